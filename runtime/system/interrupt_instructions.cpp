// Instructions that raise events or stop the vCPU: int n, int3, into,
// int1 (icebp), hlt; and the CPL 0 cache/TLB instructions invlpg, wbinvd,
// invd.
//
// int n/int3/into are delivered here, through deliver_event() with their
// software source (gate DPL checked, return address after the instruction);
// int1 is a #DB trap without the DPL check. The result is therefore never
// kException for them. invlpg computes the linear address without limit
// checks (Vol. 2 INVLPG lists none) and reports it to invalidate_page();
// wbinvd and invd have nothing to do: guest RAM is coherent host memory.
#include "runtime/system/event_delivery.h"
#include "runtime/system/instruction_operands.h"
#include "runtime/system/system_instructions.h"

namespace bt86 {

SystemOutcome execute_int(SystemContext& ctx, const DecodedInstruction& insn) {
  const auto vec = static_cast<uint8_t>(insn.operands[0].imm.value.u);
  return deliver_event(ctx,
                       GuestEvent::software(vec, EventSource::kSoftwareInterrupt, insn.length()));
}

SystemOutcome execute_int3(SystemContext& ctx, const DecodedInstruction& insn) {
  return deliver_event(
      ctx, GuestEvent::software(vector::kBp, EventSource::kSoftwareException, insn.length()));
}

SystemOutcome execute_into(SystemContext& ctx, const DecodedInstruction& insn) {
  if (!(ctx.cpu().eflags & eflags::kOf)) return complete(ctx, insn);
  return deliver_event(
      ctx, GuestEvent::software(vector::kOf, EventSource::kSoftwareException, insn.length()));
}

SystemOutcome execute_int1(SystemContext& ctx, const DecodedInstruction& insn) {
  ctx.cpu().eip = insn.next_eip();
  return deliver_event(ctx, GuestEvent::exception({vector::kDb, std::nullopt, std::nullopt}));
}

SystemOutcome execute_hlt(SystemContext& ctx, const DecodedInstruction& insn) {
  if (ctx.cpu().cpl() != 0) return SystemOutcome::fault(vector::kGp, 0);
  ctx.cpu().eip = insn.next_eip();
  return SystemOutcome::halt();
}

SystemOutcome execute_invlpg(SystemContext& ctx, const DecodedInstruction& insn) {
  const CpuState& cpu = ctx.cpu();
  if (cpu.cpl() != 0) return SystemOutcome::fault(vector::kGp, 0);
  const ZydisDecodedOperand& op = insn.operands[0];
  if (op.type != ZYDIS_OPERAND_TYPE_MEMORY) return SystemOutcome::fault(vector::kUd);
  const uint32_t linear =
      cpu.segment(segment_of(op.mem.segment)).base + effective_address(cpu, insn, op);
  ctx.invalidate_page(linear);
  return complete(ctx, insn);
}

SystemOutcome execute_cache_invalidation(SystemContext& ctx, const DecodedInstruction& insn) {
  if (ctx.cpu().cpl() != 0) return SystemOutcome::fault(vector::kGp, 0);
  return complete(ctx, insn);
}

}  // namespace bt86
