// Termination signals (SIGINT, SIGTERM, SIGHUP, SIGQUIT) without an
// asynchronous handler.
//
// The constructor blocks these signals in the calling thread, so every
// thread created afterwards inherits the mask, and a watcher thread reads
// them from a signalfd. On a signal it runs on_signal (restore the
// terminal, ask the machine and vCPU to stop) in ordinary thread context,
// where taking locks and calling tcsetattr is safe. After the run,
// reraise() delivers the signal with its default action so the parent sees
// the process die of it, as it would without bt86 in between.
//
// Create it before any other thread (the vCPU, the watchdog).
//
//   TerminationSignals signals([&](int signo) { console.restore_terminal(); ... });
//   ... run ...
//   if (signals.received()) signals.reraise();
#pragma once

#include <atomic>
#include <functional>

#include "monitor/signal_watcher.h"

namespace bt86 {

class TerminationSignals {
 public:
  // Throws std::system_error if the signalfd or eventfd cannot be made.
  explicit TerminationSignals(std::function<void(int)> on_signal);

  // The first signal received, or 0.
  int received() const { return received_.load(); }
  // Unblocks and raises received() with the default action. Returns only
  // if the default action does not terminate.
  void reraise();

 private:
  std::function<void(int)> on_signal_;
  std::atomic<int> received_{0};
  SignalWatcher watcher_;  // Last: its thread uses the members above.
};

}  // namespace bt86
