#include "monitor/kvm/kvm_run_kicker.h"

#include <linux/kvm.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <system_error>

#include "monitor/kvm/kvm_ioctl_numbers.h"

namespace bt86 {

namespace {

// The signal exists only to make KVM_RUN return; its delivery does nothing.
void ignore_kick(int) {}

[[noreturn]] void throw_errno(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

}  // namespace

KvmRunKicker::~KvmRunKicker() {
  if (has_timer_) timer_delete(timer_);
}

void KvmRunKicker::attach_to_current_thread(const KvmFd& vcpu) {
  if (attached()) return;
  const int sig = signal_number();

  // A process-wide disposition, but one only this backend's threads ever
  // receive (both the timer and kick() target the vCPU thread).
  struct sigaction action {};
  action.sa_handler = ignore_kick;
  sigemptyset(&action.sa_mask);
  if (sigaction(sig, &action, nullptr) != 0) throw_errno("sigaction for the KVM kick signal");

  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, sig);
  sigset_t current;
  if (pthread_sigmask(SIG_BLOCK, &block, &current) != 0) throw_errno("pthread_sigmask");

  // KVM_SET_SIGNAL_MASK takes the kernel's 8-byte sigset after a length
  // field; struct kvm_signal_mask's flexible array cannot be declared in C++
  // with its C layout, so it is spelled out.
  sigset_t during_run = current;
  sigdelset(&during_run, sig);
  struct {
    uint32_t len;
    std::array<uint8_t, 8> sigset;
  } mask{};
  mask.len = 8;
  std::memcpy(mask.sigset.data(), &during_run, 8);
  vcpu.ioctl_or_throw(kvm_ioctl::kSetSignalMask, "KVM_SET_SIGNAL_MASK", &mask);

  sigevent event{};
  event.sigev_notify = SIGEV_THREAD_ID;
  event.sigev_signo = sig;
  event._sigev_un._tid = static_cast<pid_t>(syscall(SYS_gettid));
  if (timer_create(CLOCK_MONOTONIC, &event, &timer_) != 0) throw_errno("timer_create");
  has_timer_ = true;
  thread_ = pthread_self();
  attached_.store(true, std::memory_order_release);
}

void KvmRunKicker::arm_after_ns(uint64_t ns) {
  if (!has_timer_) return;
  itimerspec spec{};
  spec.it_value.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
  spec.it_value.tv_nsec = static_cast<long>(ns % 1'000'000'000);
  if (timer_settime(timer_, 0, &spec, nullptr) != 0) throw_errno("timer_settime");
}

void KvmRunKicker::kick() const {
  if (attached()) pthread_kill(thread_, signal_number());
}

void KvmRunKicker::consume_pending() const {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, signal_number());
  const timespec zero{};
  while (sigtimedwait(&set, nullptr, &zero) > 0) {
  }
}

}  // namespace bt86
