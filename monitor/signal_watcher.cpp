#include "monitor/signal_watcher.h"

#include <pthread.h>

#include <cerrno>
#include <csignal>
#include <ctime>

namespace bt86 {

SignalWatcher::SignalWatcher(std::initializer_list<int> signals, std::function<void(int)> on_signal)
    : on_signal_(std::move(on_signal)), stop_signal_(*signals.begin()) {
  sigemptyset(&set_);
  for (int signo : signals) sigaddset(&set_, signo);
  pthread_sigmask(SIG_BLOCK, &set_, nullptr);
  thread_ = std::thread([this] { watch(); });
}

SignalWatcher::~SignalWatcher() {
  stopping_.store(true, std::memory_order_release);
  pthread_kill(thread_.native_handle(), stop_signal_);
  thread_.join();
}

void SignalWatcher::while_paused(bool discard, const std::function<void()>& update) {
  std::lock_guard lock(dispatch_mutex_);
  if (discard) discard_pending();
  update();
}

void SignalWatcher::discard_pending() {
  discards_.fetch_add(1, std::memory_order_acq_rel);
  const timespec now{};
  siginfo_t info;
  while (sigtimedwait(&set_, &info, &now) > 0) {
  }
}

void SignalWatcher::watch() {
  for (;;) {
    siginfo_t info;
    const int signo = sigwaitinfo(&set_, &info);
    if (stopping_.load(std::memory_order_acquire)) return;
    if (signo < 0) continue;  // EINTR.
    // A while_paused(true, ...) that ran between taking the signal and
    // dispatching it drops it, as it drops those still pending. (One that
    // runs in the instant between sigwaitinfo returning and the load below
    // does not: the signal is then handled after its update.)
    const uint64_t discards_at_receipt = discards_.load(std::memory_order_acquire);
    std::lock_guard lock(dispatch_mutex_);
    if (discards_.load(std::memory_order_acquire) != discards_at_receipt) continue;
    on_signal_(signo);
  }
}

}  // namespace bt86
