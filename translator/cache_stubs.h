// The fixed stubs at the start of the translation cache: the only ways in and
// out of translated code.
//
// enter(ctx, target) is called from C++ (SysV ABI): it saves the callee-saved
// registers on the VMM stack, records that stack in ctx->host_rsp, saves the
// VMM's FS base and installs the window bases as FS/GS bases (FSGSBASE
// instructions: the host must have them, see host_has_fsgsbase()), installs
// guest flags and registers, and jumps to target with r15 = ctx.
// exit_common stores the guest registers and flags into ctx (eip and exit_id
// were stored by the exit that jumped here), restores the VMM's FS base,
// switches back to the VMM stack, saves the guest FPU state if it is live
// and restores the VMM's MXCSR/FCW, and returns from enter(). fault_exit is
// the same return path for the host fault handler, which has already
// written every guest field itself. indirect_miss leaves with the guest
// target of a failed lookup (in r8d) as the next EIP.
//
// The guest's x87/SSE state is loaded only when translated code needs it:
// the guest kernel, which runs most exits, never touches it, and an fxrstor
// on every entry and an fxsave and fninit on every exit were a tenth of the
// cost of a round trip through C++. A unit jumps through ctx->fpu_gate
// before its first x87/MMX/SSE instruction, with the way back in
// ctx->fpu_return (a flag-free sequence: guest flags are live there):
// fpu_load installs the guest image and repoints the gate at fpu_ready,
// which only returns. The runtime points the gate at fpu_load whenever the
// image in ctx->fpu is the one to use (fpu_live = 0).
#pragma once

#include <cstdint>
#include <cstring>
#include <span>

#include "translator/code_memory.h"
#include "translator/vcpu_context.h"

namespace bt86 {

struct CacheStubs {
  uint64_t enter = 0;
  uint64_t exit_common = 0;
  uint64_t fault_exit = 0;
  uint64_t indirect_miss = 0;
  uint64_t fpu_load = 0;
  uint64_t fpu_ready = 0;
  uint64_t end = 0;  // First exec address after the stubs.

  using EnterFunction = void (*)(VcpuContext* context, uint64_t target);
  EnterFunction enter_function() const { return reinterpret_cast<EnterFunction>(enter); }
  // Installs the guest's FXSAVE image for the next entries; the fpu_load
  // stub will fxrstor it when a unit first needs it.
  void use_fpu_image(VcpuContext& context, std::span<const uint8_t, 512> image) const {
    std::memcpy(context.fpu, image.data(), sizeof context.fpu);
    // fxrstor faults on reserved MXCSR bits; a bad image must not crash the VMM.
    uint32_t mxcsr;
    std::memcpy(&mxcsr, context.fpu + 24, 4);
    mxcsr &= 0xFFFF;
    std::memcpy(context.fpu + 24, &mxcsr, 4);
    context.fpu_live = 0;
    context.fpu_gate = fpu_load;
  }
};

// Emits the stubs at the start of memory.
CacheStubs emit_cache_stubs(CodeMemory& memory);

}  // namespace bt86
