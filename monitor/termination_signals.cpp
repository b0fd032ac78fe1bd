#include "monitor/termination_signals.h"

#include <pthread.h>

#include <csignal>

namespace bt86 {

TerminationSignals::TerminationSignals(std::function<void(int)> on_signal)
    : on_signal_(std::move(on_signal)),
      watcher_({SIGINT, SIGTERM, SIGHUP, SIGQUIT}, [this](int signo) {
        int expected = 0;
        if (received_.compare_exchange_strong(expected, signo)) on_signal_(signo);
      }) {}

void TerminationSignals::reraise() {
  const int signo = received_.load();
  if (signo == 0) return;
  std::signal(signo, SIG_DFL);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, signo);
  // The signal was consumed from the signalfd: send it again, then let it in.
  raise(signo);
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
}

}  // namespace bt86
