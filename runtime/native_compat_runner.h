// The native compatibility-mode runner: executes a 32-bit guest code
// sequence directly on the host CPU, as the oracle the differential tester
// and the benchmarks compare the translator against.
//
// Layout. The whole low 4 GiB of the host address space is reserved
// (PROT_NONE) for the runner's lifetime. Guest memory [0, size) is a memfd;
// guest linear A is host linear A: the guest's code and data segments are
// LDT descriptors with base 0 and a 4 GiB limit, so any access outside the
// image is a real #PF on a reserved page. Base 0 matters: on the AMD hosts
// measured, compat code with a non-zero CS/DS base runs about 20x slower (a
// dec/jnz loop: 5.6 ns per iteration instead of 0.28 ns), which would make
// the oracle useless for benchmarks. The price: host page 0 cannot be
// mapped (vm.mmap_min_addr), so guest page 0 is never present natively, and
// the two-page entry stub (32-bit code, its own LDT code segment) sits at
// guest linear kStubBase, the one address outside the image that does not
// fault natively. Callers keep guest page 0 and the stub out of their tests.
//
// Entry: fxrstor the guest FPU/SSE image, load DS/ES/FS/GS with the flat
// LDT data selector and SS with it or the 16-bit stack one (kStack16Selector),
// popfq the guest EFLAGS, load the GPRs and lretq to the
// stub, which loads ESP and far-jumps to the guest's EIP. Exit: only through
// signals (runtime/host_signals.h). hlt at CPL 3 raises #GP -> SIGSEGV at the
// hlt: a normal end. Any other fault becomes a GuestException with the
// vector and error code the kernel reports in the signal frame. The handler
// copies the guest state out of the ucontext and rewrites it to resume at a
// 64-bit return path with the VMM's RSP; that path reloads segment
// selectors, FS/GS bases and the VMM's FPU image from memory, because compat
// code leaves nothing of the VMM's registers intact. A periodic timer signal
// bounds a sequence that never ends (reported as kStopRequested).
//
// Differences from FlatHarness by construction: the guest runs at CPL 3
// (pushf shows IF=1, IOPL=0; privileged instructions #GP), and #PF error
// codes keep only the P and W/R bits, as the harness reports them.
//
//   HostSignalThread signals;
//   NativeCompatRunner native(signals, {.memory_size = 1 << 20});
//   std::memcpy(native.memory().data() + 0x1000, code, n);
//   FlatRunResult r = native.run(state);  // state.eip = 0x1000, ...
#pragma once

#include <time.h>

#include <cstdint>
#include <span>

#include "runtime/flat_harness.h"
#include "runtime/host_signals.h"

namespace bt86 {

struct NativeEntryBlock;  // What the entry/return assembly reads and writes.

class NativeCompatRunner : private HostFaultHandler {
 public:
  struct Options {
    uint32_t memory_size = 16u << 20;  // Multiple of 4 KiB, in (4 KiB, 2 GiB].
    uint32_t timeout_ms = 2000;        // Wall-clock bound on one run.
  };

  static constexpr uint64_t kGuestBase = 0;
  static constexpr uint64_t kStubBase = 0xFFFF0000;
  // The selectors guest code runs with (LDT entries, RPL 3), which push sreg
  // and mov r/m, sreg reveal: CS holds the code one, every other segment
  // register the data one.
  static constexpr uint16_t kCodeSelector = 0x07;
  static constexpr uint16_t kDataSelector = 0x0F;
  // CS when the start state's CS is present with D clear: the same segment
  // as 16-bit code. Any other CS (a default-constructed one too) runs 32-bit.
  // Likewise SS with B clear: a 16-bit stack (SP, wrapping at 64 KiB).
  static constexpr uint16_t kCode16Selector = 0x1F;
  static constexpr uint16_t kStack16Selector = 0x27;

  // Throws std::runtime_error if the host cannot run compat code this way
  // (no FSGSBASE, modify_ldt refused, low 4 GiB already in use).
  NativeCompatRunner(HostSignalThread& signals, const Options& options);
  ~NativeCompatRunner() override;
  NativeCompatRunner(const NativeCompatRunner&) = delete;
  NativeCompatRunner& operator=(const NativeCompatRunner&) = delete;

  std::span<uint8_t> memory() { return {vmm_view_, memory_size_}; }
  void set_page_access(uint32_t address, uint32_t length, PageAccess access);

  // Runs from start.gpr/eip/eflags/fpu. Only the arithmetic flags and DF of
  // start.eflags are used (IF is set, as at CPL 3). Throws
  // std::invalid_argument for a state the host cannot load (reserved MXCSR
  // bits). The result's segments are start's.
  FlatRunResult run(const CpuState& start);

 private:
  bool handle_host_signal(HostSignal& signal) override;
  void release();

  HostSignalThread& signals_;
  uint32_t memory_size_;
  uint32_t timeout_ms_;
  uint32_t mxcsr_mask_ = 0;
  int memfd_ = -1;
  uint8_t* vmm_view_ = nullptr;
  bool reserved_ = false;
  bool have_timer_ = false;
  timer_t timer_{};
  NativeEntryBlock* block_ = nullptr;
  FlatRunResult* current_ = nullptr;
  bool stub_fault_ = false;
};

}  // namespace bt86
