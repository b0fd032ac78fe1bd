// The debugger's view of a KvmVcpu: single steps and breakpoints through
// KVM_SET_GUEST_DEBUG, with the x86 debug registers doing the work.
//
// Breakpoints and watchpoints share the four hardware slots (DR0-DR3), so
// at most four can be active at once; a fifth is kept and reported as not
// armed. Watchpoints are 1, 2 or 4 bytes, aligned, and stop after any write
// to them (the hardware cannot tell whether the value changed). The guest's
// own use of the debug registers is hidden while the debugger holds them.
// The BT-only views are absent: bt() is nullptr.
#pragma once

#include <memory>

#include "monitor/debug_target.h"

namespace bt86 {

class Machine;

// vcpu must be a KvmVcpu (from the kvm backend). Throws std::system_error
// if KVM refuses guest debugging.
std::unique_ptr<DebugTarget> make_kvm_debug_target(Machine& machine, std::unique_ptr<Vcpu> vcpu);

}  // namespace bt86
