// Loading segment registers in protected mode: the selector and descriptor
// checks of Vol. 2 MOV/POP/LDS (data segments and SS), of far transfers and
// IRET (CS and the outer SS), and of the stack switch in event delivery
// (SS from the TSS). Each check returns the fault the SDM names; on success
// the caller gets the hidden part to cache and commits it, so a failing
// instruction changes no register.
//
// The hidden part is what decode_segment_descriptor() gives, with the
// accessed bit as it is in memory after the load and, for CS, DPL replaced
// by the new CPL (CpuState::cpl() reads CS.dpl; conforming code segments
// run at the caller's CPL, not at their DPL).
#pragma once

#include <cstdint>

#include "runtime/system/descriptor_tables.h"
#include "runtime/system/system_context.h"

namespace bt86 {

// A segment register loaded with a null selector: unusable, every access #GP.
Segment null_segment(uint16_t selector);

// mov/pop/lds-family load of DS, ES, FS, GS or SS at the current CPL:
// commits the register and notifies segments_changed(). mov/pop SS also
// set the interrupt shadow; that is the caller's business.
SystemOutcome load_segment_register(SystemContext& ctx, SegReg reg, uint16_t selector);

// SS for a transfer to privilege level cpl (iret/ret far to an outer level:
// check_vector #GP, ext 0; a stack switch through the TSS: #TS with EXT).
// Not present is #SS(selector) in both cases.
SystemOutcome validate_stack_segment(SystemContext& ctx, uint16_t selector, uint8_t cpl,
                                     uint8_t check_vector, uint32_t ext, Segment* out);

// CS for a far jmp/call to a code segment at the current CPL (no gate):
// conforming: DPL <= CPL; non-conforming: RPL <= CPL and DPL == CPL.
// out gets the hidden part with RPL and DPL set to the CPL.
SystemOutcome validate_far_code_segment(SystemContext& ctx, uint16_t selector, Segment* out);

// CS for a return (ret far, iret) to privilege level RPL of selector:
// RPL >= CPL; conforming: DPL <= RPL; non-conforming: DPL == RPL.
SystemOutcome validate_return_code_segment(SystemContext& ctx, uint16_t selector, Segment* out);

// After a return to an outer level: ES, DS, FS and GS that the new CPL may
// not use (DPL < CPL, data or non-conforming code) become null.
void null_inaccessible_data_segments(CpuState& cpu);

}  // namespace bt86
