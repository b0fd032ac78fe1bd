#include "monitor/debugger/interrupt_watcher.h"

#include <csignal>

namespace bt86 {

InterruptWatcher::InterruptWatcher()
    : watcher_({SIGINT}, [this](int) {
        if (on_interrupt_) on_interrupt_();
      }) {}

void InterruptWatcher::arm(std::function<void()> on_interrupt) {
  // A SIGINT left from the prompt must not stop the run being armed.
  watcher_.while_paused(true, [&] { on_interrupt_ = std::move(on_interrupt); });
}

void InterruptWatcher::disarm() {
  watcher_.while_paused(false, [&] { on_interrupt_ = nullptr; });
}

}  // namespace bt86
