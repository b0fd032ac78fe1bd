// The fixed stubs at the start of the translation cache: the only ways in and
// out of translated code.
//
// enter(ctx, target) is called from C++ (SysV ABI): it saves the callee-saved
// registers on the VMM stack, records that stack in ctx->host_rsp, saves the
// VMM's FS base and installs the window bases as FS/GS bases (FSGSBASE
// instructions: the host must have them, see host_has_fsgsbase()), installs
// guest FPU state, flags and registers, and jumps to target with r15 = ctx.
// exit_common stores the guest registers and flags into ctx (eip and exit_id
// were stored by the exit that jumped here), restores the VMM's FS base,
// switches back to the VMM stack,
// saves the guest FPU state, restores the VMM's MXCSR/FCW and returns from
// enter(). fault_exit is the same return path for the host fault handler,
// which has already written every guest field itself. indirect_miss leaves
// with the guest target of a failed lookup (in r8d) as the next EIP.
#pragma once

#include <cstdint>

#include "translator/code_memory.h"
#include "translator/vcpu_context.h"

namespace bt86 {

struct CacheStubs {
  uint64_t enter = 0;
  uint64_t exit_common = 0;
  uint64_t fault_exit = 0;
  uint64_t indirect_miss = 0;
  uint64_t end = 0;  // First exec address after the stubs.

  using EnterFunction = void (*)(VcpuContext* context, uint64_t target);
  EnterFunction enter_function() const { return reinterpret_cast<EnterFunction>(enter); }
};

// Emits the stubs at the start of memory.
CacheStubs emit_cache_stubs(CodeMemory& memory);

}  // namespace bt86
