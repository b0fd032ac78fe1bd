// One KVM vCPU over a bt86 Machine, and the VM it lives in.
//
// The run loop, in order, each iteration:
//   1. a pending stop (request_stop(), or the Machine's: debug exit, reset,
//      quit, timeout) ends run() with the matching VcpuExit;
//   2. device deadlines that have passed are serviced;
//   3. a halted vCPU blocks in Machine::wait_for_event() until the PIC
//      raises INTR with IF set (hlt with IF clear and nothing pending is a
//      power-off: nothing but an NMI could wake it, and bt86 has none);
//   4. if the PIC has INTR: inject it with KVM_INTERRUPT when KVM says the
//      guest can take one, otherwise ask for an interrupt-window exit;
//   5. arm the kick timer at the next device deadline and KVM_RUN;
//   6. dispatch the exit: port I/O and MMIO to the Machine's buses, hlt,
//      shutdown (triple fault), internal errors with the faulting EIP and
//      instruction bytes.
// Invariant: the vCPU's injected-but-undelivered interrupt is KVM's (it
// shows in state().events.interrupt); nothing is acknowledged from the PIC
// unless KVM has just said it can be injected.
//
// All methods but request_stop() belong to the thread that calls run().
#pragma once

#include <linux/kvm.h>

#include <atomic>
#include <cstdint>
#include <string>

#include "monitor/backend.h"
#include "monitor/kvm/kvm_fd.h"
#include "monitor/kvm/kvm_run_kicker.h"
#include "monitor/kvm/kvm_state_conversion.h"

namespace bt86 {

class KvmVcpu final : public Vcpu {
 public:
  // Creates the VM (memory slots, TSS area) and vCPU 0 with the Machine's
  // CPUID. Throws std::system_error naming the failing ioctl.
  KvmVcpu(const KvmFd& kvm, Machine& machine, bool use_xsave);
  ~KvmVcpu() override;

  VcpuExit run() override;
  CpuState state() const override;
  void set_state(const CpuState& state) override;
  void request_stop() override;

  // Exits taken since creation, by kind, for the benchmarks and the debugger.
  struct Counters {
    uint64_t runs = 0;
    uint64_t port_io = 0;
    uint64_t mmio = 0;
    uint64_t halts = 0;
    uint64_t interrupts_injected = 0;
  };
  const Counters& counters() const { return counters_; }

  // For the debugger: KVM_SET_GUEST_DEBUG (single-step, hardware
  // breakpoints), and what the last KVM_EXIT_DEBUG reported. A debug exit
  // ends run() with kStopRequested.
  void set_guest_debug(const kvm_guest_debug& debug);
  const kvm_debug_exit_arch& last_debug_exit() const { return last_debug_exit_; }

 private:
  VcpuExit run_loop();
  void create_memory_slots();
  void set_cpuid();
  void handle_port_io();
  void handle_mmio();
  // Step 3 of the loop; returns false if run() must return exit.
  bool wait_while_halted(VcpuExit& exit);
  void inject_or_request_window();
  void arm_kick_timer();
  VcpuExit exit_for_machine_stop();
  std::string describe_guest_position() const;
  std::string internal_error_message() const;
  std::string shutdown_message() const;

  Machine& machine_;
  bool use_xsave_;
  KvmFd vm_;
  KvmFd vcpu_;
  kvm_run* run_ = nullptr;
  size_t run_size_ = 0;
  KvmRunKicker kicker_;
  std::atomic<bool> stop_requested_{false};
  bool halted_ = false;
  // EFLAGS.IF when the vCPU halted: KVM's run area only reports IF after an
  // exit, and a halted state can also come from set_state().
  bool halted_with_if_ = false;
  Counters counters_;
  kvm_debug_exit_arch last_debug_exit_{};
};

}  // namespace bt86
