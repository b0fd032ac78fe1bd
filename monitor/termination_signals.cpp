#include "monitor/termination_signals.h"

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <system_error>

namespace bt86 {

namespace {

sigset_t termination_set() {
  sigset_t set;
  sigemptyset(&set);
  for (int signo : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) sigaddset(&set, signo);
  return set;
}

}  // namespace

TerminationSignals::TerminationSignals(std::function<void(int)> on_signal)
    : on_signal_(std::move(on_signal)) {
  const sigset_t set = termination_set();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal_fd_ = signalfd(-1, &set, SFD_CLOEXEC);
  if (signal_fd_ < 0) throw std::system_error(errno, std::generic_category(), "signalfd");
  stop_fd_ = eventfd(0, EFD_CLOEXEC);
  if (stop_fd_ < 0) {
    close(signal_fd_);
    throw std::system_error(errno, std::generic_category(), "eventfd");
  }
  thread_ = std::thread([this] { watch(); });
}

TerminationSignals::~TerminationSignals() {
  const uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = write(stop_fd_, &one, sizeof one);
  thread_.join();
  close(signal_fd_);
  close(stop_fd_);
}

void TerminationSignals::watch() {
  for (;;) {
    pollfd fds[2] = {{signal_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents) return;
    signalfd_siginfo info;
    if (read(signal_fd_, &info, sizeof info) != sizeof info) continue;
    int expected = 0;
    if (received_.compare_exchange_strong(expected, static_cast<int>(info.ssi_signo))) {
      on_signal_(static_cast<int>(info.ssi_signo));
    }
  }
}

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
