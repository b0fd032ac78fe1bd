#include "runtime/bt/event_kicker.h"

#include <sys/mman.h>
#include <time.h>

#include <chrono>

namespace bt86 {
namespace {

uint64_t monotonic_now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000 + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace

EventKicker::EventKicker(void* poll_page) : poll_page_(poll_page), thread_([this] { loop(); }) {}

EventKicker::~EventKicker() {
  {
    std::lock_guard lock(mutex_);
    quit_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void EventKicker::protect(bool armed) {
  mprotect(poll_page_, 4096, armed ? PROT_NONE : PROT_READ | PROT_WRITE);
}

void EventKicker::set_deadline(std::optional<uint64_t> deadline_ns, uint64_t now_ns) {
  uint64_t d = now_ns + kMaxSliceNs;
  if (deadline_ns && *deadline_ns < d) d = *deadline_ns;
  std::lock_guard lock(mutex_);
  // Only an earlier deadline needs the thread awake; a later one is noticed
  // when the current one passes (it then re-reads deadline_ns_).
  const bool earlier = d < deadline_ns_;
  deadline_ns_ = d;
  if (earlier) cv_.notify_one();
}

void EventKicker::kick() {
  protect(true);
}

void EventKicker::rearm() {
  protect(false);
}

void EventKicker::loop() {
  std::unique_lock lock(mutex_);
  while (!quit_) {
    const uint64_t now = monotonic_now_ns();
    if (deadline_ns_ <= now) {
      deadline_ns_ = UINT64_MAX;
      protect(true);
      continue;
    }
    if (deadline_ns_ == UINT64_MAX) {
      cv_.wait(lock);
    } else {
      cv_.wait_for(lock, std::chrono::nanoseconds(deadline_ns_ - now));
    }
  }
}

}  // namespace bt86
