// CPUID, the MSRs and the time-stamp counter (Vol. 2 CPUID, RDMSR, WRMSR,
// RDTSC, RDPMC; Vol. 4 for the MSR numbers).
//
// The MSR table lists exactly the MSRs the bt86 CPU model has: the SYSENTER
// MSRs (CPUID SEP), the TSC (CPUID TSC), PAT only if CPUID advertises PAT,
// and the Intel family 6 registers every such CPU answers (platform ID,
// microcode signature, MISC_ENABLE). Every other index is #GP(0), which is
// what Linux's rdmsr_safe/wrmsr_safe probes expect; so is a write of a value
// a register cannot hold. RDTSCP is #UD (not in the model), RDPMC is #GP(0)
// (no performance counters).
#include <array>

#include "monitor/cpuid_model.h"
#include "monitor/machine.h"
#include "runtime/system/guest_event.h"
#include "runtime/system/instruction_operands.h"
#include "runtime/system/system_instructions.h"

namespace bt86 {
namespace {

struct MsrAccess {
  uint32_t index;
  uint32_t required_edx1;  // CPUID leaf 1 EDX bit the MSR depends on, or 0.
  // Returns false for a value the register cannot hold (#GP(0)).
  uint64_t (*read)(SystemContext&);
  bool (*write)(SystemContext&, uint64_t);
};

// PAT entries must be valid memory types (0, 1, 4, 5, 6, 7).
bool valid_pat(uint64_t value) {
  for (int i = 0; i < 8; ++i) {
    const uint64_t type = (value >> (8 * i)) & 0xFF;
    if (type == 2 || type == 3 || type > 7) return false;
  }
  return true;
}

constexpr MsrAccess kMsrs[] = {
    {msr_index::kTsc, cpuid::edx1::kTsc, [](SystemContext& c) { return c.read_tsc(); },
     [](SystemContext& c, uint64_t v) {
       c.write_tsc(v);
       return true;
     }},
    {msr_index::kPlatformId, 0, [](SystemContext&) { return uint64_t{0}; },
     [](SystemContext&, uint64_t) { return false; }},
    // Writing the signature MSR is how software asks for it to be refreshed;
    // there is no microcode, so it reads 0.
    {msr_index::kBiosSignId, 0, [](SystemContext&) { return uint64_t{0}; },
     [](SystemContext&, uint64_t) { return true; }},
    {msr_index::kSysenterCs, cpuid::edx1::kSep,
     [](SystemContext& c) { return uint64_t{c.cpu().msr.sysenter_cs}; },
     [](SystemContext& c, uint64_t v) {
       c.cpu().msr.sysenter_cs = static_cast<uint32_t>(v) & 0xFFFF;
       return true;
     }},
    {msr_index::kSysenterEsp, cpuid::edx1::kSep,
     [](SystemContext& c) { return uint64_t{c.cpu().msr.sysenter_esp}; },
     [](SystemContext& c, uint64_t v) {
       c.cpu().msr.sysenter_esp = static_cast<uint32_t>(v);
       return true;
     }},
    {msr_index::kSysenterEip, cpuid::edx1::kSep,
     [](SystemContext& c) { return uint64_t{c.cpu().msr.sysenter_eip}; },
     [](SystemContext& c, uint64_t v) {
       c.cpu().msr.sysenter_eip = static_cast<uint32_t>(v);
       return true;
     }},
    {msr_index::kMiscEnable, 0, [](SystemContext& c) { return c.cpu().msr.misc_enable; },
     [](SystemContext& c, uint64_t v) {
       c.cpu().msr.misc_enable = v;
       return true;
     }},
    {msr_index::kPat, cpuid::edx1::kPat, [](SystemContext& c) { return c.cpu().msr.pat; },
     [](SystemContext& c, uint64_t v) {
       if (!valid_pat(v)) return false;
       c.cpu().msr.pat = v;
       return true;
     }},
};

const MsrAccess* find_msr(SystemContext& ctx, uint32_t index) {
  const uint32_t edx1 = ctx.machine().cpuid().query(1, 0).edx;
  for (const MsrAccess& m : kMsrs) {
    if (m.index == index) return (m.required_edx1 & ~edx1) == 0 ? &m : nullptr;
  }
  return nullptr;
}

}  // namespace

SystemOutcome execute_rdmsr(SystemContext& ctx, const DecodedInstruction& insn) {
  CpuState& cpu = ctx.cpu();
  if (cpu.cpl() != 0) return SystemOutcome::fault(vector::kGp, 0);
  const MsrAccess* m = find_msr(ctx, cpu.reg(Gpr::kEcx));
  if (!m) return SystemOutcome::fault(vector::kGp, 0);
  const uint64_t value = m->read(ctx);
  cpu.reg(Gpr::kEax) = static_cast<uint32_t>(value);
  cpu.reg(Gpr::kEdx) = static_cast<uint32_t>(value >> 32);
  return complete(ctx, insn);
}

SystemOutcome execute_wrmsr(SystemContext& ctx, const DecodedInstruction& insn) {
  CpuState& cpu = ctx.cpu();
  if (cpu.cpl() != 0) return SystemOutcome::fault(vector::kGp, 0);
  const MsrAccess* m = find_msr(ctx, cpu.reg(Gpr::kEcx));
  const uint64_t value = (uint64_t{cpu.reg(Gpr::kEdx)} << 32) | cpu.reg(Gpr::kEax);
  if (!m || !m->write(ctx, value)) return SystemOutcome::fault(vector::kGp, 0);
  return complete(ctx, insn);
}

SystemOutcome execute_rdtsc(SystemContext& ctx, const DecodedInstruction& insn) {
  CpuState& cpu = ctx.cpu();
  if ((cpu.cr4 & cr4::kTsd) && cpu.cpl() != 0) return SystemOutcome::fault(vector::kGp, 0);
  const uint64_t tsc = ctx.read_tsc();
  cpu.reg(Gpr::kEax) = static_cast<uint32_t>(tsc);
  cpu.reg(Gpr::kEdx) = static_cast<uint32_t>(tsc >> 32);
  return complete(ctx, insn);
}

SystemOutcome execute_rdpmc(SystemContext&, const DecodedInstruction&) {
  return SystemOutcome::fault(vector::kGp, 0);
}

SystemOutcome execute_cpuid(SystemContext& ctx, const DecodedInstruction& insn) {
  CpuState& cpu = ctx.cpu();
  const CpuidResult r = ctx.machine().cpuid().query(cpu.reg(Gpr::kEax), cpu.reg(Gpr::kEcx));
  cpu.reg(Gpr::kEax) = r.eax;
  cpu.reg(Gpr::kEbx) = r.ebx;
  cpu.reg(Gpr::kEcx) = r.ecx;
  cpu.reg(Gpr::kEdx) = r.edx;
  return complete(ctx, insn);
}

}  // namespace bt86
