// Host signals read in ordinary thread context instead of an asynchronous
// handler: the shared mechanism behind termination signals (`run`) and
// Ctrl-C (`debug`).
//
// The constructor blocks the signals in the calling thread, so every thread
// created afterwards inherits the mask (create it before any other thread),
// and a watcher thread takes them with sigwaitinfo and calls on_signal(signo)
// for each, where taking locks and calling tcsetattr is safe. Not a signalfd:
// every signal sent to any thread of the process wakes a signalfd's waiters,
// and the BT backend takes a SIGSEGV per hidden page fault, so a watcher
// polling one woke ~13k times a second on the other core.
//
//   SignalWatcher w({SIGINT}, [&](int) { vcpu.request_stop(); });
//   w.while_paused(/*discard_pending=*/true, [&] { armed = true; });
#pragma once

#include <csignal>

#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <mutex>
#include <thread>

namespace bt86 {

class SignalWatcher {
 public:
  // signals must not be empty.
  SignalWatcher(std::initializer_list<int> signals, std::function<void(int)> on_signal);
  ~SignalWatcher();
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

  // Runs update while no on_signal call is in progress or can start; with
  // discard_pending, signals received but not yet handled are dropped first.
  void while_paused(bool discard_pending, const std::function<void()>& update);

 private:
  void watch();
  void discard_pending();

  std::function<void(int)> on_signal_;
  sigset_t set_;
  int stop_signal_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> discards_{0};  // Bumped by while_paused(true, ...).
  std::mutex dispatch_mutex_;
  std::thread thread_;
};

}  // namespace bt86
