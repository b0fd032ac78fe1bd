#include "runtime/bt/event_kicker.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

#include "runtime/host_signals.h"

namespace bt86 {

EventKicker::EventKicker(void* poll_page) : poll_page_(poll_page) {}

EventKicker::~EventKicker() {
  stop_timer();
}

void EventKicker::start_timer() {
  if (has_timer_) return;
  sigevent event{};
  event.sigev_notify = SIGEV_THREAD_ID;
  event.sigev_signo = kick_signal();
  const auto thread = static_cast<pid_t>(syscall(SYS_gettid));
  event._sigev_un._tid = thread;
  if (timer_create(CLOCK_MONOTONIC, &event, &timer_) != 0) {
    throw std::system_error(errno, std::generic_category(), "timer_create for the event kicker");
  }
  has_timer_ = true;
  timer_thread_.store(thread);
  armed_ns_ = 0;
}

void EventKicker::stop_timer() {
  if (!has_timer_) return;
  timer_thread_.store(0);
  timer_delete(timer_);
  has_timer_ = false;
}

void EventKicker::set_deadline(std::optional<uint64_t> deadline_ns, uint64_t now_ns) {
  if (!has_timer_) return;
  uint64_t d = now_ns + kMaxSliceNs;
  if (deadline_ns && *deadline_ns < d) d = *deadline_ns;
  // A later deadline needs nothing: the armed one fires first, costs one
  // poll exit, and the next call arms the later one.
  if (armed_ns_ > now_ns && armed_ns_ <= d) return;
  itimerspec spec{};
  // An absolute time of 0 would disarm; a passed deadline fires at once.
  const uint64_t at = d == 0 ? 1 : d;
  spec.it_value.tv_sec = static_cast<time_t>(at / 1'000'000'000);
  spec.it_value.tv_nsec = static_cast<long>(at % 1'000'000'000);
  timer_settime(timer_, TIMER_ABSTIME, &spec, nullptr);
  armed_ns_ = at;
}

void EventKicker::kick() {
  on_kick_signal();
  if (const pid_t thread = timer_thread_.load(); thread != 0) kick_thread(thread);
}

void EventKicker::on_kick_signal() {
  kicked_.store(true, std::memory_order_relaxed);
  mprotect(poll_page_, 4096, PROT_NONE);
}

void EventKicker::rearm() {
  kicked_.store(false, std::memory_order_relaxed);
  mprotect(poll_page_, 4096, PROT_READ | PROT_WRITE);
}

}  // namespace bt86
