// Host signals read in ordinary thread context instead of an asynchronous
// handler: the shared mechanism behind termination signals (`run`) and
// Ctrl-C (`debug`).
//
// The constructor blocks the signals in the calling thread, so every thread
// created afterwards inherits the mask (create it before any other thread),
// and a watcher thread reads them from a signalfd and calls on_signal(signo)
// for each, where taking locks and calling tcsetattr is safe.
//
//   SignalWatcher w({SIGINT}, [&](int) { vcpu.request_stop(); });
//   w.while_paused(/*discard_pending=*/true, [&] { armed = true; });
#pragma once

#include <functional>
#include <initializer_list>
#include <mutex>
#include <thread>

namespace bt86 {

class SignalWatcher {
 public:
  // Throws std::system_error if the signalfd or eventfd cannot be made.
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
  int signal_fd_ = -1;
  int stop_fd_ = -1;
  std::mutex dispatch_mutex_;
  std::thread thread_;
};

}  // namespace bt86
