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
#include <mutex>
#include <thread>

namespace bt86 {

class InterruptWatcher {
 public:
  // Throws std::system_error if the signalfd or eventfd cannot be made.
  InterruptWatcher();
  ~InterruptWatcher();
  InterruptWatcher(const InterruptWatcher&) = delete;
  InterruptWatcher& operator=(const InterruptWatcher&) = delete;

  void arm(std::function<void()> on_interrupt);
  void disarm();

 private:
  void watch();
  void drain();

  int signal_fd_ = -1;
  int stop_fd_ = -1;
  std::mutex mutex_;
  std::function<void()> on_interrupt_;
  std::thread thread_;
};

}  // namespace bt86
