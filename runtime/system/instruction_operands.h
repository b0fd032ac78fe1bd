// The operands of decoded system instructions: general registers of every
// width, segment registers, and memory operands turned into checked linear
// addresses (segment base, limit and type checks of Vol. 3A 5.3: #GP(0), or
// #SS(0) for SS-relative operands, then the page walk at the current CPL).
//
// Effective addresses honour the address size (16-bit addressing wraps at
// 64 KiB) and the segment Zydis resolved (override or default).
#pragma once

#include <cstdint>

#include "runtime/system/guest_access.h"
#include "runtime/system/system_context.h"
#include "translator/guest_decoder.h"

namespace bt86 {

// EAX..EDI, AX..DI, AL..BH; anything else throws std::logic_error (the
// dispatcher only routes forms with general registers here).
uint32_t read_gpr(const CpuState& cpu, ZydisRegister reg);
// 16- and 8-bit writes keep the rest of the 32-bit register.
void write_gpr(CpuState& cpu, ZydisRegister reg, uint32_t value);

bool is_segment_register(ZydisRegister reg);
SegReg segment_of(ZydisRegister reg);

uint32_t effective_address(const CpuState& cpu, const DecodedInstruction& insn,
                           const ZydisDecodedOperand& op);

// The linear address of size bytes at a memory operand plus displacement,
// after the segment checks for the access (#GP(0), or #SS(0) for SS).
SystemOutcome memory_operand_linear(SystemContext& ctx, const DecodedInstruction& insn,
                                    const ZydisDecodedOperand& op, uint32_t displacement, int size,
                                    SegmentAccess access, uint32_t* linear);

// Reads size bytes at the memory operand plus displacement (lgdt's base
// after its limit, the selector after a far pointer's offset).
SystemOutcome read_memory_operand(SystemContext& ctx, const DecodedInstruction& insn,
                                  const ZydisDecodedOperand& op, uint32_t displacement, int size,
                                  uint32_t* value);
SystemOutcome write_memory_operand(SystemContext& ctx, const DecodedInstruction& insn,
                                   const ZydisDecodedOperand& op, uint32_t displacement, int size,
                                   uint32_t value);

// A register, memory or immediate operand of size bytes.
SystemOutcome read_operand(SystemContext& ctx, const DecodedInstruction& insn,
                           const ZydisDecodedOperand& op, int size, uint32_t* value);
// A register (sized by the register) or memory operand (size bytes).
SystemOutcome write_operand(SystemContext& ctx, const DecodedInstruction& insn,
                            const ZydisDecodedOperand& op, int size, uint32_t value);

// The instruction completed: EIP moves past it.
inline SystemOutcome complete(SystemContext& ctx, const DecodedInstruction& insn) {
  ctx.cpu().eip = insn.next_eip();
  return SystemOutcome::ok();
}

}  // namespace bt86
