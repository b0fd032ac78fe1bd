// Segment register loads and stores: mov to/from Sreg, pop Sreg, and the
// far-pointer loads lds/les/lfs/lgs/lss (Vol. 2 MOV, POP, LDS). The checks
// themselves live in segment_loads.cpp; this file moves the operands.
// mov ss / pop ss set the interrupt shadow so that the following
// "mov esp" completes before any interrupt, as on hardware.
#include "runtime/system/guest_event.h"
#include "runtime/system/instruction_operands.h"
#include "runtime/system/segment_loads.h"
#include "runtime/system/system_instructions.h"

namespace bt86 {

SystemOutcome execute_mov_to_segment(SystemContext& ctx, const DecodedInstruction& insn) {
  const SegReg reg = segment_of(insn.operands[0].reg.value);
  // Zydis already rejects 8E /1; the guard keeps a CS load from ever
  // bypassing the far-transfer checks that set the CPL.
  if (reg == SegReg::kCs) return SystemOutcome::fault(vector::kUd);
  uint32_t selector = 0;
  SystemOutcome o = read_operand(ctx, insn, insn.operands[1], 2, &selector);
  if (!o.continues()) return o;
  o = load_segment_register(ctx, reg, static_cast<uint16_t>(selector));
  if (!o.continues()) return o;
  if (reg == SegReg::kSs) ctx.cpu().events.interrupt_shadow = true;
  return complete(ctx, insn);
}

SystemOutcome execute_mov_from_segment(SystemContext& ctx, const DecodedInstruction& insn) {
  const uint16_t selector = ctx.cpu().segment(segment_of(insn.operands[1].reg.value)).selector;
  // A register destination is written at its own width (zero-extended to
  // 32 bits); a memory destination always takes 16 bits.
  SystemOutcome o = write_operand(ctx, insn, insn.operands[0], 2, selector);
  if (!o.continues()) return o;
  return complete(ctx, insn);
}

SystemOutcome execute_pop_segment(SystemContext& ctx, const DecodedInstruction& insn) {
  const SegReg reg = segment_of(insn.operands[0].reg.value);
  const int size = insn.insn.operand_width / 8;
  StackAccess stack = StackAccess::current(ctx);
  uint32_t selector = 0;
  SystemOutcome o = stack.pop(size, &selector);
  if (!o.continues()) return o;
  o = load_segment_register(ctx, reg, static_cast<uint16_t>(selector));
  if (!o.continues()) return o;
  ctx.cpu().reg(Gpr::kEsp) = stack.esp();
  if (reg == SegReg::kSs) ctx.cpu().events.interrupt_shadow = true;
  return complete(ctx, insn);
}

SystemOutcome execute_load_far_pointer(SystemContext& ctx, const DecodedInstruction& insn) {
  SegReg reg = SegReg::kDs;
  switch (insn.mnemonic()) {
    case ZYDIS_MNEMONIC_LES:
      reg = SegReg::kEs;
      break;
    case ZYDIS_MNEMONIC_LFS:
      reg = SegReg::kFs;
      break;
    case ZYDIS_MNEMONIC_LGS:
      reg = SegReg::kGs;
      break;
    case ZYDIS_MNEMONIC_LSS:
      reg = SegReg::kSs;
      break;
    default:
      break;
  }
  const int size = insn.insn.operand_width / 8;
  const ZydisDecodedOperand& mem = insn.operands[1];
  if (mem.type != ZYDIS_OPERAND_TYPE_MEMORY) return SystemOutcome::fault(vector::kUd);
  uint32_t offset = 0, selector = 0;
  SystemOutcome o = read_memory_operand(ctx, insn, mem, 0, size, &offset);
  if (o.continues()) o = read_memory_operand(ctx, insn, mem, size, 2, &selector);
  if (o.continues()) o = load_segment_register(ctx, reg, static_cast<uint16_t>(selector));
  if (!o.continues()) return o;
  write_gpr(ctx.cpu(), insn.operands[0].reg.value, offset);
  return complete(ctx, insn);
}

}  // namespace bt86
