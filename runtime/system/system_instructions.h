// The system instructions the BT engine hands to C++, routed by mnemonic.
//
// One table (system_instructions.cpp) maps each mnemonic to its handler; the
// engine asks is_system_instruction() when it classifies an instruction as a
// callout and calls execute_system_instruction() from the callout. Handlers
// follow the SystemContext conventions: EIP at the instruction on entry,
// kContinue with EIP after it (or at the transfer target), kException with
// the instruction's state untouched, kHalt, kShutdown. Instructions that
// deliver an event themselves (int n, int3, into, int1) never return
// kException.
//
// Forms routed here: mov to/from Sreg, CRn, DRn (other movs are #UD: the
// engine must not route them); pop Sreg; far jmp/call/ret only.
//
//   DecodedInstruction d;  decoder.decode(eip, bytes, &d);
//   if (is_system_instruction(d)) {
//     SystemOutcome o = execute_system_instruction(ctx, d);
//     if (o.kind == SystemOutcome::Kind::kException)
//       o = deliver_event(ctx, GuestEvent::exception(o.exception));
//   }
#pragma once

#include "runtime/system/system_context.h"
#include "translator/guest_decoder.h"

namespace bt86 {

bool is_system_instruction(const DecodedInstruction& insn);
SystemOutcome execute_system_instruction(SystemContext& ctx, const DecodedInstruction& insn);

// EFLAGS after popf/popfd of popped (size 2 or 4) at the current CPL/IOPL:
// for the engine's in-cache sequences to agree with the slow path.
uint32_t eflags_after_popf(const CpuState& cpu, uint32_t popped, int size);

// The handlers, by file.
using SystemInstructionHandler = SystemOutcome (*)(SystemContext&, const DecodedInstruction&);

// segment_instructions.cpp
SystemOutcome execute_mov_to_segment(SystemContext&, const DecodedInstruction&);
SystemOutcome execute_mov_from_segment(SystemContext&, const DecodedInstruction&);
SystemOutcome execute_pop_segment(SystemContext&, const DecodedInstruction&);
SystemOutcome execute_load_far_pointer(SystemContext&, const DecodedInstruction&);
// far_transfers.cpp
SystemOutcome execute_far_jmp(SystemContext&, const DecodedInstruction&);
SystemOutcome execute_far_call(SystemContext&, const DecodedInstruction&);
SystemOutcome execute_far_ret(SystemContext&, const DecodedInstruction&);
SystemOutcome execute_iret(SystemContext&, const DecodedInstruction&);
// control_registers.cpp
SystemOutcome execute_mov_control_register(SystemContext&, const DecodedInstruction&);
SystemOutcome execute_mov_debug_register(SystemContext&, const DecodedInstruction&);
SystemOutcome execute_clts(SystemContext&, const DecodedInstruction&);
SystemOutcome execute_lmsw(SystemContext&, const DecodedInstruction&);
SystemOutcome execute_smsw(SystemContext&, const DecodedInstruction&);
// descriptor_table_instructions.cpp
SystemOutcome execute_load_table_register(SystemContext&, const DecodedInstruction&);
SystemOutcome execute_store_table_register(SystemContext&, const DecodedInstruction&);
SystemOutcome execute_lldt(SystemContext&, const DecodedInstruction&);
SystemOutcome execute_ltr(SystemContext&, const DecodedInstruction&);
SystemOutcome execute_sldt(SystemContext&, const DecodedInstruction&);
SystemOutcome execute_str(SystemContext&, const DecodedInstruction&);
SystemOutcome execute_lar(SystemContext&, const DecodedInstruction&);
SystemOutcome execute_lsl(SystemContext&, const DecodedInstruction&);
SystemOutcome execute_verr(SystemContext&, const DecodedInstruction&);
SystemOutcome execute_verw(SystemContext&, const DecodedInstruction&);
SystemOutcome execute_arpl(SystemContext&, const DecodedInstruction&);
// model_specific_instructions.cpp
SystemOutcome execute_rdmsr(SystemContext&, const DecodedInstruction&);
SystemOutcome execute_wrmsr(SystemContext&, const DecodedInstruction&);
SystemOutcome execute_rdtsc(SystemContext&, const DecodedInstruction&);
SystemOutcome execute_rdpmc(SystemContext&, const DecodedInstruction&);
SystemOutcome execute_cpuid(SystemContext&, const DecodedInstruction&);
// port_io.cpp
SystemOutcome execute_in(SystemContext&, const DecodedInstruction&);
SystemOutcome execute_out(SystemContext&, const DecodedInstruction&);
SystemOutcome execute_string_io(SystemContext&, const DecodedInstruction&);
// fast_system_calls.cpp
SystemOutcome execute_sysenter(SystemContext&, const DecodedInstruction&);
SystemOutcome execute_sysexit(SystemContext&, const DecodedInstruction&);
// interrupt_instructions.cpp
SystemOutcome execute_int(SystemContext&, const DecodedInstruction&);
SystemOutcome execute_int3(SystemContext&, const DecodedInstruction&);
SystemOutcome execute_into(SystemContext&, const DecodedInstruction&);
SystemOutcome execute_int1(SystemContext&, const DecodedInstruction&);
SystemOutcome execute_hlt(SystemContext&, const DecodedInstruction&);
SystemOutcome execute_invlpg(SystemContext&, const DecodedInstruction&);
SystemOutcome execute_cache_invalidation(SystemContext&, const DecodedInstruction&);
// flag_instructions.cpp
SystemOutcome execute_cli(SystemContext&, const DecodedInstruction&);
SystemOutcome execute_sti(SystemContext&, const DecodedInstruction&);
SystemOutcome execute_pushf(SystemContext&, const DecodedInstruction&);
SystemOutcome execute_popf(SystemContext&, const DecodedInstruction&);

}  // namespace bt86
