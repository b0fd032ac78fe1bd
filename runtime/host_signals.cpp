#include "runtime/host_signals.h"

#include <sys/auxv.h>
#include <sys/mman.h>

#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>

#ifndef HWCAP2_FSGSBASE
#define HWCAP2_FSGSBASE (1 << 1)
#endif

namespace bt86 {
namespace {

constexpr size_t kAltStackSize = 256 * 1024;
constexpr uint64_t kBlockMagic = 0x6274383673696773ULL;  // "bt86sigs"
constexpr int kSignals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS};

// Lives at the lowest address of each thread's alternate stack; the stack
// grows down from the top, far away from it.
struct ThreadBlock {
  uint64_t magic;
  uint64_t vmm_fs_base;
  bool has_fsgsbase;
  HostFaultHandler* handler;
};

// Code that runs before the VMM's FS base is back must not touch FS: no
// sanitizer instrumentation (its shadow and fake-stack lookups read TLS) and
// no stack protector (its canary lives at fs:0x28).
#define BT86_BEFORE_FS_RESTORE \
  __attribute__((no_sanitize("address", "undefined"), no_stack_protector))

BT86_BEFORE_FS_RESTORE uint64_t read_fs_base() {
  uint64_t v;
  asm volatile("rdfsbase %0" : "=r"(v));
  return v;
}

BT86_BEFORE_FS_RESTORE void write_fs_base(uint64_t v) {
  asm volatile("wrfsbase %0" ::"r"(v) : "memory");
}

BT86_BEFORE_FS_RESTORE ThreadBlock* current_block() {
  stack_t ss;
  if (sigaltstack(nullptr, &ss) != 0 || !(ss.ss_flags & SS_ONSTACK)) return nullptr;
  auto* block = static_cast<ThreadBlock*>(ss.ss_sp);
  return block->magic == kBlockMagic ? block : nullptr;
}

// The actions installed before ours (SIG_DFL, or a sanitizer's or libFuzzer's
// crash reporter): process-wide because signal dispositions are.
struct sigaction previous_actions[NSIG];

void fall_back_to_default(int signo) {
  sigaction(signo, &previous_actions[signo], nullptr);
  // Returning re-executes a synchronous fault, which now reaches the previous
  // action (a crash report or core dump at the real culprit); asynchronous
  // ones need a raise.
}

BT86_BEFORE_FS_RESTORE void on_host_signal(int signo, siginfo_t* info, void* raw_context) {
  ThreadBlock* block = current_block();
  if (block == nullptr || block->handler == nullptr) {
    fall_back_to_default(signo);
    if (info->si_code <= 0) raise(signo);
    return;
  }
  HostSignal signal{signo, info, static_cast<ucontext_t*>(raw_context), 0, 0};
  if (block->has_fsgsbase) {
    signal.interrupted_fs_base = read_fs_base();
    signal.resume_fs_base = signal.interrupted_fs_base;
    if (signal.interrupted_fs_base != block->vmm_fs_base) write_fs_base(block->vmm_fs_base);
  }
  if (!block->handler->handle_host_signal(signal)) {
    fall_back_to_default(signo);
    if (info->si_code <= 0) raise(signo);
    return;
  }
  if (block->has_fsgsbase && signal.resume_fs_base != block->vmm_fs_base) {
    write_fs_base(signal.resume_fs_base);
  }
}

void install_process_handlers() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_host_signal;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    for (int s : kSignals) {
      if (sigaction(s, &sa, &previous_actions[s]) != 0) {
        throw std::runtime_error("sigaction failed: " + std::string(strerror(errno)));
      }
    }
    if (sigaction(watchdog_signal(), &sa, &previous_actions[watchdog_signal()]) != 0) {
      throw std::runtime_error("sigaction failed: " + std::string(strerror(errno)));
    }
  });
}

}  // namespace

int watchdog_signal() {
  return SIGRTMIN + 2;
}

bool host_has_fsgsbase() {
  return (getauxval(AT_HWCAP2) & HWCAP2_FSGSBASE) != 0;
}

HostSignalThread::HostSignalThread() {
  stack_ = mmap(nullptr, kAltStackSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (stack_ == MAP_FAILED) {
    stack_ = nullptr;
    throw std::runtime_error("cannot allocate the alternate signal stack");
  }
  auto* block = static_cast<ThreadBlock*>(stack_);
  block->magic = kBlockMagic;
  block->has_fsgsbase = host_has_fsgsbase();
  block->vmm_fs_base = block->has_fsgsbase ? read_fs_base() : 0;
  block->handler = nullptr;
  stack_t ss{};
  ss.ss_sp = stack_;
  ss.ss_size = kAltStackSize;
  if (sigaltstack(&ss, &previous_) != 0) {
    munmap(stack_, kAltStackSize);
    throw std::runtime_error("sigaltstack failed: " + std::string(strerror(errno)));
  }
  install_process_handlers();
}

HostSignalThread::~HostSignalThread() {
  sigaltstack(&previous_, nullptr);
  munmap(stack_, kAltStackSize);
}

void HostSignalThread::set_handler(HostFaultHandler* handler) {
  static_cast<ThreadBlock*>(stack_)->handler = handler;
}

HostFaultHandler* HostSignalThread::handler() const {
  return static_cast<ThreadBlock*>(stack_)->handler;
}

}  // namespace bt86
