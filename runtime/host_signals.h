// Host signals: the one place where the runtime touches process-wide state.
//
// Every synchronous host signal the runtime cares about (SIGSEGV, SIGBUS,
// SIGILL, SIGFPE, SIGTRAP, SIGSYS) enters one handler. It runs on a
// per-thread alternate signal stack because inside the translation cache RSP
// holds guest ESP, and inside guest user code in compatibility mode nothing
// of the VMM's stack is trustworthy. The thread's block at the base of that
// alternate stack says which HostFaultHandler owns the thread and what the
// VMM's FS base is; the handler restores FS before any C++ runs (glibc keeps
// its thread pointer, errno and the stack-protector canary behind FS, and
// translated code may run with a guest-derived FS base), and puts back
// whatever FS base the resumed context needs before returning.
//
//   HostSignalThread signals;          // once per thread that runs guest code
//   signals.set_handler(&my_handler);  // my_handler.handle_host_signal(...)
#pragma once

#include <sys/types.h>
#include <ucontext.h>
#include <csignal>
#include <cstdint>

namespace bt86 {

// What a fault handler sees and may change, in signal context.
struct HostSignal {
  int signo;
  siginfo_t* info;
  ucontext_t* context;
  // FS base the interrupted code ran with; the handler may set the one to
  // resume with (for example the VMM's own, when it redirects to C++).
  uint64_t interrupted_fs_base;
  uint64_t resume_fs_base;
};

class HostFaultHandler {
 public:
  virtual ~HostFaultHandler() = default;
  // Runs in signal context on the alternate stack: async-signal-safe code
  // only. Returns true if the signal was handled (the context may have been
  // edited to resume elsewhere); false lets the default action happen.
  virtual bool handle_host_signal(HostSignal& signal) = 0;
};

// RAII owner of the calling thread's alternate signal stack and handler slot.
// The first instance in the process installs the signal handlers. Not
// movable: the handler finds the block from its own stack pointer.
class HostSignalThread {
 public:
  HostSignalThread();
  ~HostSignalThread();
  HostSignalThread(const HostSignalThread&) = delete;
  HostSignalThread& operator=(const HostSignalThread&) = delete;

  void set_handler(HostFaultHandler* handler);
  HostFaultHandler* handler() const;

 private:
  void* stack_ = nullptr;
  stack_t previous_{};
};

// The one asynchronous signal routed through the handler: the watchdog timer
// of native compatibility-mode runs (runtime/native_compat_runner.h), which
// must leave guest code through a handler that restores FS first. A
// realtime signal, so that SIGALRM stays free for others (libFuzzer).
int watchdog_signal();

// The other asynchronous one: the BT event kicker's timer
// (runtime/bt/event_kicker.h). Installed with SA_RESTART so that it never
// fails the VMM's own system calls; one that arrives at a thread with no
// handler (a timer that fired as its run loop ended) is ignored. Also sent
// by kick_thread() so that a stop request from another thread reaches
// translated code that loops inside one unit and never meets a poll load.
int kick_signal();
// Async-signal-safe: sends kick_signal() to thread (a thread id of this process).
void kick_thread(pid_t thread);

// True if the CPU and kernel let user space use rd/wrfsbase (FSGSBASE).
bool host_has_fsgsbase();

}  // namespace bt86
