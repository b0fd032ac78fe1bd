// Ctrl-C for the debugger: SIGINT stops a running guest and nothing else.
//
// The constructor blocks SIGINT in the calling thread (create it before any
// other thread, so they inherit the mask) and a watcher thread reads it from
// a signalfd in ordinary thread context. While a callback is armed (the
// guest runs), SIGINT calls it; at the prompt SIGINT is ignored, and a
// signal left pending from the prompt is drained when the next run arms it.
//
//   InterruptWatcher ctrl_c;
//   ctrl_c.arm([&] { target.interrupt(); });
//   target.resume();
//   ctrl_c.disarm();
#pragma once

#include <functional>

#include "monitor/signal_watcher.h"

namespace bt86 {

class InterruptWatcher {
 public:
  // Throws std::system_error if the signalfd or eventfd cannot be made.
  InterruptWatcher();

  void arm(std::function<void()> on_interrupt);
  void disarm();

 private:
  // Guarded by the watcher: read only inside its callback, written only
  // through while_paused().
  std::function<void()> on_interrupt_;
  SignalWatcher watcher_;  // Last: its thread uses on_interrupt_.
};

}  // namespace bt86
