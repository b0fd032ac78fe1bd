// Control and debug registers (Vol. 2 MOV CRn/DRn, CLTS, LMSW, SMSW; Vol. 3A
// 2.5): CPL 0 only (#GP(0)), with the bit rules of the bt86 CPU model.
//
// - CR0: PG without PE and NW without CD are #GP(0); ET reads as 1 (P6 and
//   later hardwire it); other reserved bits are ignored, as the SDM allows
//   for 32-bit CR0.
// - CR4: every bit the CPUID model does not advertise is reserved and #GP(0)
//   (PAE among them: the model is non-PAE); VME/PVI are rejected too since
//   bt86 does not emulate virtual-8086 mode.
// - paging_changed() follows writes that change translations: CR0.PG/WP,
//   any CR3 write (a TLB flush), CR4.PSE/PGE.
// - DR4/DR5 alias DR6/DR7 with CR4.DE clear and are #UD with it set; debug
//   registers are stored only (no breakpoints fire).
#include "runtime/system/guest_event.h"
#include "runtime/system/instruction_operands.h"
#include "runtime/system/system_instructions.h"

namespace bt86 {
namespace {

constexpr uint32_t kCr0Defined = cr0::kPe | cr0::kMp | cr0::kEm | cr0::kTs | cr0::kEt | cr0::kNe |
                                 cr0::kWp | cr0::kAm | cr0::kNw | cr0::kCd | cr0::kPg;
constexpr uint32_t kCr0Paging = cr0::kPg | cr0::kWp;
constexpr uint32_t kCr4Mce = 1u << 6;
constexpr uint32_t kCr4Pce = 1u << 8;
constexpr uint32_t kCr4Allowed =
    cr4::kTsd | cr4::kDe | cr4::kPse | kCr4Pce | cr4::kPge | cr4::kOsfxsr | cr4::kOsxmmexcpt;
static_assert((kCr4Allowed & (cr4::kPae | cr4::kVme | cr4::kPvi | kCr4Mce)) == 0);
constexpr uint32_t kCr4Paging = cr4::kPse | cr4::kPge;

SystemOutcome write_cr0(SystemContext& ctx, uint32_t value) {
  CpuState& cpu = ctx.cpu();
  value = (value & kCr0Defined) | cr0::kEt;
  if ((value & cr0::kPg) && !(value & cr0::kPe)) return SystemOutcome::fault(vector::kGp, 0);
  if ((value & cr0::kNw) && !(value & cr0::kCd)) return SystemOutcome::fault(vector::kGp, 0);
  if (!(value & cr0::kPe)) {
    return SystemOutcome::shutdown("CR0.PE cleared: bt86 does not emulate real mode");
  }
  const uint32_t old = cpu.cr0;
  cpu.cr0 = value;
  if ((old ^ value) & kCr0Paging) ctx.paging_changed();
  return SystemOutcome::ok();
}

SystemOutcome write_cr4(SystemContext& ctx, uint32_t value) {
  CpuState& cpu = ctx.cpu();
  if (value & ~kCr4Allowed) return SystemOutcome::fault(vector::kGp, 0);
  const uint32_t old = cpu.cr4;
  cpu.cr4 = value;
  if ((old ^ value) & kCr4Paging) ctx.paging_changed();
  return SystemOutcome::ok();
}

// DR4/DR5 -> DR6/DR7 when CR4.DE is clear; -1: #UD.
int debug_register_index(const CpuState& cpu, ZydisRegister reg) {
  const int n = reg - ZYDIS_REGISTER_DR0;
  if (n == 4 || n == 5) return (cpu.cr4 & cr4::kDe) ? -1 : n + 2;
  return n;
}

}  // namespace

SystemOutcome execute_mov_control_register(SystemContext& ctx, const DecodedInstruction& insn) {
  CpuState& cpu = ctx.cpu();
  const ZydisDecodedOperand& dst = insn.operands[0];
  const ZydisDecodedOperand& src = insn.operands[1];
  const bool to_cr = dst.reg.value >= ZYDIS_REGISTER_CR0 && dst.reg.value <= ZYDIS_REGISTER_CR15;
  const ZydisRegister cr = to_cr ? dst.reg.value : src.reg.value;
  const bool defined = cr == ZYDIS_REGISTER_CR0 || cr == ZYDIS_REGISTER_CR2 ||
                       cr == ZYDIS_REGISTER_CR3 || cr == ZYDIS_REGISTER_CR4;
  if (!defined) return SystemOutcome::fault(vector::kUd);
  if (cpu.cpl() != 0) return SystemOutcome::fault(vector::kGp, 0);
  if (!to_cr) {
    uint32_t value = cpu.cr0;
    if (cr == ZYDIS_REGISTER_CR2) value = cpu.cr2;
    if (cr == ZYDIS_REGISTER_CR3) value = cpu.cr3;
    if (cr == ZYDIS_REGISTER_CR4) value = cpu.cr4;
    write_gpr(cpu, dst.reg.value, value);
    return complete(ctx, insn);
  }
  const uint32_t value = read_gpr(cpu, src.reg.value);
  SystemOutcome o = SystemOutcome::ok();
  switch (cr) {
    case ZYDIS_REGISTER_CR0:
      o = write_cr0(ctx, value);
      break;
    case ZYDIS_REGISTER_CR2:
      cpu.cr2 = value;
      break;
    case ZYDIS_REGISTER_CR3:
      cpu.cr3 = value;
      ctx.paging_changed();
      break;
    default:
      o = write_cr4(ctx, value);
      break;
  }
  if (!o.continues()) return o;
  return complete(ctx, insn);
}

SystemOutcome execute_mov_debug_register(SystemContext& ctx, const DecodedInstruction& insn) {
  CpuState& cpu = ctx.cpu();
  const ZydisDecodedOperand& dst = insn.operands[0];
  const ZydisDecodedOperand& src = insn.operands[1];
  const bool to_dr = dst.reg.value >= ZYDIS_REGISTER_DR0 && dst.reg.value <= ZYDIS_REGISTER_DR15;
  const ZydisRegister dr = to_dr ? dst.reg.value : src.reg.value;
  if (dr > ZYDIS_REGISTER_DR7) return SystemOutcome::fault(vector::kUd);
  if (cpu.cpl() != 0) return SystemOutcome::fault(vector::kGp, 0);
  const int n = debug_register_index(cpu, dr);
  if (n < 0) return SystemOutcome::fault(vector::kUd);
  if (!to_dr) {
    write_gpr(cpu, dst.reg.value, cpu.dr[n]);
    return complete(ctx, insn);
  }
  uint32_t value = read_gpr(cpu, src.reg.value);
  // DR6 and DR7 have fixed bits (Vol. 3A 18.2.3, 18.2.4).
  if (n == 6) value = (value & 0x0000E00Fu) | 0xFFFF0FF0u;
  if (n == 7) value = (value & 0xFFFF2BFFu) | 0x400u;
  cpu.dr[n] = value;
  return complete(ctx, insn);
}

SystemOutcome execute_clts(SystemContext& ctx, const DecodedInstruction& insn) {
  if (ctx.cpu().cpl() != 0) return SystemOutcome::fault(vector::kGp, 0);
  ctx.cpu().cr0 &= ~cr0::kTs;
  return complete(ctx, insn);
}

SystemOutcome execute_lmsw(SystemContext& ctx, const DecodedInstruction& insn) {
  CpuState& cpu = ctx.cpu();
  if (cpu.cpl() != 0) return SystemOutcome::fault(vector::kGp, 0);
  uint32_t msw = 0;
  SystemOutcome o = read_operand(ctx, insn, insn.operands[0], 2, &msw);
  if (!o.continues()) return o;
  // LMSW loads PE, MP, EM and TS; it can set PE but never clear it.
  constexpr uint32_t kMsw = cr0::kPe | cr0::kMp | cr0::kEm | cr0::kTs;
  cpu.cr0 = (cpu.cr0 & ~(kMsw & ~cr0::kPe)) | (msw & kMsw);
  return complete(ctx, insn);
}

SystemOutcome execute_smsw(SystemContext& ctx, const DecodedInstruction& insn) {
  // A register destination gets all of CR0 at its width; memory gets 16 bits.
  SystemOutcome o = write_operand(ctx, insn, insn.operands[0], 2, ctx.cpu().cr0);
  if (!o.continues()) return o;
  return complete(ctx, insn);
}

}  // namespace bt86
