// The event kicker: forces translated code out of the cache when the
// machine has work, without a check in hot code.
//
// A helper thread sleeps until the deadline the vCPU thread last set (the
// machine's next device deadline, capped so that console input and stop
// requests through the Machine alone are seen within kMaxSliceNs) and then
// protects the vCPU context's poll page: every unit entry loads from it, so
// the running code faults at the next unit boundary and the dispatcher
// services the machine. kick() does the same at once (request_stop from any
// thread). The dispatcher calls rearm() after every poll fault, which
// unprotects the page; a kick that races with it just costs one more fault.
//
//   EventKicker kicker(context->poll_page);
//   kicker.set_deadline(machine.next_deadline_ns());   // before entering the cache
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <thread>

namespace bt86 {

class EventKicker {
 public:
  static constexpr uint64_t kMaxSliceNs = 10'000'000;

  explicit EventKicker(void* poll_page);
  ~EventKicker();
  EventKicker(const EventKicker&) = delete;
  EventKicker& operator=(const EventKicker&) = delete;

  // CLOCK_MONOTONIC ns (the Machine's MonotonicClock); nullopt: only the cap.
  void set_deadline(std::optional<uint64_t> deadline_ns, uint64_t now_ns);
  // Any thread: protect the poll page now.
  void kick();
  // vCPU thread, after a poll fault: unprotect the page.
  void rearm();

 private:
  void loop();
  void protect(bool armed);

  void* poll_page_;
  std::mutex mutex_;
  std::condition_variable cv_;
  uint64_t deadline_ns_ = UINT64_MAX;
  bool quit_ = false;
  std::thread thread_;
};

}  // namespace bt86
