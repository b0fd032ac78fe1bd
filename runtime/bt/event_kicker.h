// The event kicker: forces translated code out of the cache when the
// machine has work, without a check in hot code.
//
// Every unit entry loads from the vCPU context's poll page; protecting that
// page makes the running code fault at the next unit boundary, where the
// dispatcher services the machine. A POSIX timer armed at the deadline the
// vCPU thread last set (the machine's next device deadline, capped so that
// console input and stop requests are seen within kMaxSliceNs) sends
// kick_signal() to the vCPU thread itself, whose handler protects the page.
// No helper thread: a second thread of this process would make every
// mprotect and munmap of the shadow MMU shoot down TLBs on the other core,
// and a condition-variable handshake per deadline cost more than the timer.
// A unit's loop to its own start skips the poll load, so the handler also
// breaks the loop of the unit the thread was in
// (TranslationCache::break_loop_at). kick() protects the page at once
// (request_stop from any thread) and signals the vCPU thread so that its
// handler does the same. The dispatcher calls rearm() after every poll
// fault, which unprotects the page; a kick that races with it just costs
// one more fault, and a stop request is also checked by the dispatcher
// before every entry.
//
//   EventKicker kicker(context->poll_page);
//   EventKicker::TimerScope timer(kicker);               // in the vCPU thread's run loop
//   kicker.set_deadline(machine.next_deadline_ns(), now);  // before entering the cache
#pragma once

#include <sys/types.h>
#include <time.h>

#include <atomic>
#include <cstdint>
#include <optional>

namespace bt86 {

class EventKicker {
 public:
  static constexpr uint64_t kMaxSliceNs = 10'000'000;

  explicit EventKicker(void* poll_page);
  ~EventKicker();
  EventKicker(const EventKicker&) = delete;
  EventKicker& operator=(const EventKicker&) = delete;

  // The timer signals the thread that calls start_timer(), which must have a
  // HostSignalThread whose handler passes kick_signal() to kick(). Throws
  // std::system_error if the timer cannot be created.
  void start_timer();
  void stop_timer();

  class TimerScope {
   public:
    explicit TimerScope(EventKicker& kicker) : kicker_(kicker) { kicker_.start_timer(); }
    ~TimerScope() { kicker_.stop_timer(); }
    TimerScope(const TimerScope&) = delete;
    TimerScope& operator=(const TimerScope&) = delete;

   private:
    EventKicker& kicker_;
  };

  // CLOCK_MONOTONIC ns (the Machine's MonotonicClock); nullopt: only the cap.
  // Reprograms the timer only when the deadline moves earlier than the one
  // armed or the armed one has passed, so most calls make no system call.
  void set_deadline(std::optional<uint64_t> deadline_ns, uint64_t now_ns);
  // Any thread, and async-signal-safe: protect the poll page now and send
  // kick_signal() to the thread that runs the timer, if one does.
  void kick();
  // The handler of kick_signal() on the vCPU thread: protect the page.
  void on_kick_signal();
  // Kicked since the last rearm(). A handler that resumes translated code
  // breaks that unit's loops too, for a kick that arrived while it ran.
  bool kicked() const { return kicked_.load(std::memory_order_relaxed); }
  // vCPU thread, after a poll fault: unprotect the page.
  void rearm();

 private:
  void* poll_page_;
  timer_t timer_{};
  bool has_timer_ = false;
  std::atomic<pid_t> timer_thread_{0};  // 0 while no timer runs.
  std::atomic<bool> kicked_{false};
  uint64_t armed_ns_ = 0;  // 0: not armed, or already fired.
};

}  // namespace bt86
