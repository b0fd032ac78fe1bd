// Leaving the translation cache from a host signal: the part of fault
// handling the flat harness and the BT backend share.
//
// A host fault inside translated code is turned into precise guest state in
// two steps: recover_signal_state() maps the signal context's registers and
// RIP back to the guest instruction boundary (translator/fault_recovery.h),
// and leave_through_fault_exit() writes that state into the VcpuContext and
// edits the signal context so that, when the handler returns, the CPU runs
// the cache's fault_exit stub and enter() returns to the dispatcher as if
// the unit had exited normally with exit_id kExitHostFault. Both run in
// signal context on the alternate stack.
#pragma once

#include "runtime/host_signals.h"
#include "translator/fault_recovery.h"
#include "translator/translation_cache.h"
#include "translator/vcpu_context.h"

namespace bt86 {

// False if the signal did not come from a live unit of cache.
bool recover_signal_state(const TranslationCache& cache, const HostSignal& signal,
                          uint64_t window_base, RecoveredGuestState* out);

void leave_through_fault_exit(const TranslationCache& cache, VcpuContext& context,
                              HostSignal& signal, const RecoveredGuestState& guest);

}  // namespace bt86
