#include "runtime/cache_fault_exit.h"

namespace bt86 {

bool recover_signal_state(const TranslationCache& cache, const HostSignal& signal,
                          uint64_t window_base, RecoveredGuestState* out) {
  const greg_t* g = signal.context->uc_mcontext.gregs;
  const uint64_t rip = static_cast<uint64_t>(g[REG_RIP]);
  if (!cache.memory().contains(rip)) return false;
  const TranslationUnit* unit = cache.unit_at_host(rip);
  if (unit == nullptr) return false;
  HostRegisterFile regs;
  const int order[8] = {REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP, REG_RSI, REG_RDI};
  for (int i = 0; i < 8; ++i) regs.gpr[i] = static_cast<uint64_t>(g[order[i]]);
  regs.rflags = static_cast<uint64_t>(g[REG_EFL]);
  regs.r13 = static_cast<uint64_t>(g[REG_R13]);
  return recover_guest_state(*unit, rip, regs, window_base, out);
}

void leave_through_fault_exit(const TranslationCache& cache, VcpuContext& context,
                              HostSignal& signal, const RecoveredGuestState& guest) {
  greg_t* g = signal.context->uc_mcontext.gregs;
  for (int i = 0; i < 8; ++i) context.gpr[i] = guest.gpr[i];
  context.eip = guest.eip;
  context.rflags = guest.rflags;
  context.exit_id = kExitHostFault;
  g[REG_RIP] = static_cast<greg_t>(cache.stubs().fault_exit);
  g[REG_R15] = static_cast<greg_t>(reinterpret_cast<uint64_t>(&context));
  g[REG_EFL] &= ~static_cast<greg_t>(0x40500);  // TF, DF, AC: the VMM's C++ expects them clear.
}

}  // namespace bt86
