// Getting a vCPU thread out of KVM_RUN: for device deadlines (the PIT tick
// must interrupt a guest that never exits on its own) and for stop requests.
//
// One real-time signal (kKickSignalOffset above SIGRTMIN) is blocked in the
// vCPU thread at all times except inside KVM_RUN (KVM_SET_SIGNAL_MASK), so
// it can only ever interrupt the guest, never the VMM's own code between
// runs. It is sent to that thread alone: by a POSIX timer armed at the next
// device deadline (SIGEV_THREAD_ID), or by kick() from any thread. A kick
// that arrives between runs stays pending and ends the next KVM_RUN at
// once; after KVM_RUN returns EINTR the pending signal is consumed with
// sigtimedwait, as QEMU does, or it would end every later run too.
//
//   KvmRunKicker kicker;
//   kicker.attach_to_current_thread(vcpu_fd);   // on the vCPU thread
//   kicker.arm_after_ns(1'000'000);             // KVM_RUN ends within ~1 ms
//   ... ioctl(KVM_RUN) -> EINTR ...
//   kicker.consume_pending();
#pragma once

#include <pthread.h>
#include <signal.h>
#include <time.h>

#include <atomic>
#include <cstdint>

#include "monitor/kvm/kvm_fd.h"

namespace bt86 {

class KvmRunKicker {
 public:
  static constexpr int kKickSignalOffset = 1;
  static int signal_number() { return SIGRTMIN + kKickSignalOffset; }

  KvmRunKicker() = default;
  ~KvmRunKicker();
  KvmRunKicker(const KvmRunKicker&) = delete;
  KvmRunKicker& operator=(const KvmRunKicker&) = delete;

  // On the thread that will call KVM_RUN; idempotent for the same thread.
  // Throws std::system_error if the signal, mask or timer cannot be set up.
  void attach_to_current_thread(const KvmFd& vcpu);
  bool attached() const { return attached_.load(std::memory_order_acquire); }

  // Arms the one-shot timer ns from now (0 disarms).
  void arm_after_ns(uint64_t ns);
  // Any thread, async-signal-safe. No effect before attach.
  void kick() const;
  // Eats pending kick signals (after KVM_RUN returned EINTR).
  void consume_pending() const;

 private:
  pthread_t thread_{};
  timer_t timer_{};
  bool has_timer_ = false;
  std::atomic<bool> attached_{false};
};

}  // namespace bt86
