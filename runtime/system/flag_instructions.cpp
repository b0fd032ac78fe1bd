// cli, sti, pushf and popf with their protected-mode privilege rules
// (Vol. 2 CLI/STI/PUSHF/POPF; no VME/PVI in the bt86 model). The engine runs
// these in the cache on a virtual IF where it can prove CPL 0; this is the
// slow path for everything else (CPL 3, IOPL games).
//
// - cli/sti: CPL <= IOPL, else #GP(0). sti that sets IF opens the
//   one-instruction interrupt shadow.
// - pushf: the image has VM and RF clear.
// - popf: CPL 0 changes everything but VM/VIF/VIP (RF is cleared);
//   0 < CPL <= IOPL keeps IOPL; CPL > IOPL keeps IOPL and IF, without a
//   fault. A 16-bit popf changes only the low 16 bits.
#include "runtime/system/guest_event.h"
#include "runtime/system/instruction_operands.h"
#include "runtime/system/system_instructions.h"

namespace bt86 {
namespace {

uint8_t iopl_of(const CpuState& cpu) {
  return (cpu.eflags & eflags::kIoplMask) >> 12;
}

}  // namespace

uint32_t eflags_after_popf(const CpuState& cpu, uint32_t popped, int size) {
  uint32_t writable = eflags::kArith | eflags::kTf | eflags::kDf | eflags::kNt | eflags::kAc |
                      eflags::kId | eflags::kRf;
  if (cpu.cpl() == 0) writable |= eflags::kIoplMask;
  if (cpu.cpl() <= iopl_of(cpu)) writable |= eflags::kIf;
  if (size == 2) writable &= 0xFFFF;
  popped &= ~eflags::kRf;
  return (cpu.eflags & ~writable) | (popped & writable) | eflags::kFixed1;
}

SystemOutcome execute_cli(SystemContext& ctx, const DecodedInstruction& insn) {
  CpuState& cpu = ctx.cpu();
  if (cpu.cpl() > iopl_of(cpu)) return SystemOutcome::fault(vector::kGp, 0);
  cpu.eflags &= ~eflags::kIf;
  return complete(ctx, insn);
}

SystemOutcome execute_sti(SystemContext& ctx, const DecodedInstruction& insn) {
  CpuState& cpu = ctx.cpu();
  if (cpu.cpl() > iopl_of(cpu)) return SystemOutcome::fault(vector::kGp, 0);
  if (!(cpu.eflags & eflags::kIf)) cpu.events.interrupt_shadow = true;
  cpu.eflags |= eflags::kIf;
  return complete(ctx, insn);
}

SystemOutcome execute_pushf(SystemContext& ctx, const DecodedInstruction& insn) {
  CpuState& cpu = ctx.cpu();
  const int size = insn.insn.operand_width / 8;
  StackAccess stack = StackAccess::current(ctx);
  SystemOutcome o = stack.push(cpu.eflags & ~(eflags::kVm | eflags::kRf), size);
  if (!o.continues()) return o;
  cpu.reg(Gpr::kEsp) = stack.esp();
  return complete(ctx, insn);
}

SystemOutcome execute_popf(SystemContext& ctx, const DecodedInstruction& insn) {
  CpuState& cpu = ctx.cpu();
  const int size = insn.insn.operand_width / 8;
  StackAccess stack = StackAccess::current(ctx);
  uint32_t value = 0;
  SystemOutcome o = stack.pop(size, &value);
  if (!o.continues()) return o;
  cpu.eflags = eflags_after_popf(cpu, value, size);
  cpu.reg(Gpr::kEsp) = stack.esp();
  return complete(ctx, insn);
}

}  // namespace bt86
