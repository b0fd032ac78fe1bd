// SYSENTER and SYSEXIT (Vol. 2): the flat CPL 0 / CPL 3 segments are
// derived from IA32_SYSENTER_CS without reading the GDT, exactly as the
// hardware does (the guest must lay its GDT out to match: CS, SS = CS+8,
// user CS = CS+16, user SS = CS+24).
#include "runtime/system/guest_event.h"
#include "runtime/system/instruction_operands.h"
#include "runtime/system/system_instructions.h"
#include "shadow/descriptor.h"

namespace bt86 {
namespace {

Segment flat(uint16_t selector, uint8_t type, uint8_t dpl) {
  Segment s = flat_segment(selector, type, dpl);
  s.type |= descriptor_type::kAccessed;
  return s;
}

constexpr uint8_t kCodeExecuteRead = descriptor_type::kCode | descriptor_type::kReadable;
constexpr uint8_t kDataReadWrite = descriptor_type::kWritable;

}  // namespace

SystemOutcome execute_sysenter(SystemContext& ctx, const DecodedInstruction&) {
  CpuState& cpu = ctx.cpu();
  const uint16_t cs = static_cast<uint16_t>(cpu.msr.sysenter_cs & 0xFFFC);
  if (!(cpu.cr0 & cr0::kPe) || cs == 0) return SystemOutcome::fault(vector::kGp, 0);
  cpu.eflags &= ~(eflags::kVm | eflags::kIf | eflags::kRf);
  cpu.segment(SegReg::kCs) = flat(cs, kCodeExecuteRead, 0);
  cpu.segment(SegReg::kSs) = flat(static_cast<uint16_t>(cs + 8), kDataReadWrite, 0);
  cpu.reg(Gpr::kEsp) = cpu.msr.sysenter_esp;
  cpu.eip = cpu.msr.sysenter_eip;
  ctx.segments_changed();
  return SystemOutcome::ok();
}

SystemOutcome execute_sysexit(SystemContext& ctx, const DecodedInstruction&) {
  CpuState& cpu = ctx.cpu();
  const uint16_t cs = static_cast<uint16_t>(cpu.msr.sysenter_cs & 0xFFFC);
  if (!(cpu.cr0 & cr0::kPe) || cs == 0 || cpu.cpl() != 0) {
    return SystemOutcome::fault(vector::kGp, 0);
  }
  cpu.segment(SegReg::kCs) = flat(static_cast<uint16_t>((cs + 16) | 3), kCodeExecuteRead, 3);
  cpu.segment(SegReg::kSs) = flat(static_cast<uint16_t>((cs + 24) | 3), kDataReadWrite, 3);
  cpu.reg(Gpr::kEsp) = cpu.reg(Gpr::kEcx);
  cpu.eip = cpu.reg(Gpr::kEdx);
  ctx.segments_changed();
  return SystemOutcome::ok();
}

}  // namespace bt86
