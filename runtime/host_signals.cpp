#include "runtime/host_signals.h"

#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
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
// sanitizer instrumentation (its shadow and fake-stack lookups read TLS), no
// coverage instrumentation (libFuzzer's stack-depth tracking keeps the
// lowest stack pointer seen in a TLS variable) and no stack protector (its
// canary lives at fs:0x28).
#if defined(__clang__)
#define BT86_BEFORE_FS_RESTORE \
  __attribute__((no_sanitize("address", "undefined", "coverage"), no_stack_protector))
#else
#define BT86_BEFORE_FS_RESTORE \
  __attribute__((no_sanitize("address", "undefined"), no_stack_protector))
#endif

BT86_BEFORE_FS_RESTORE uint64_t read_fs_base() {
  uint64_t v;
  asm volatile("rdfsbase %0" : "=r"(v));
  return v;
}

BT86_BEFORE_FS_RESTORE void write_fs_base(uint64_t v) {
  asm volatile("wrfsbase %0" ::"r"(v) : "memory");
}

// Alternate stacks are kAltStackSize-aligned, so the handler finds its
// thread's block by masking its own stack pointer. This registry says
// whether the masked address really is a block (the handler may run on some
// other stack), without reading memory that may be unmapped and without the
// sigaltstack() system call, which cost as much as the rest of a hidden page
// fault's signal round trip. Plain pointers under the compiler's atomic
// builtins, not std::atomic: an instrumented build may call
// std::atomic::load out of line, and that call, before FS is restored,
// faulted on its own TLS accesses.
constexpr size_t kMaxSignalThreads = 64;
void* registered_stacks[kMaxSignalThreads];

BT86_BEFORE_FS_RESTORE ThreadBlock* current_block() {
  const auto sp = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
  void* const base = reinterpret_cast<void*>(sp & ~(kAltStackSize - 1));
  for (void* const& slot : registered_stacks) {
    if (__atomic_load_n(&slot, __ATOMIC_ACQUIRE) == base) return static_cast<ThreadBlock*>(base);
  }
  return nullptr;
}

void* map_aligned_stack() {
  void* raw =
      mmap(nullptr, 2 * kAltStackSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw std::runtime_error("cannot allocate the alternate signal stack");
  const auto start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (start + kAltStackSize - 1) & ~(kAltStackSize - 1);
  if (aligned > start) munmap(raw, aligned - start);
  const uintptr_t end = aligned + kAltStackSize;
  if (start + 2 * kAltStackSize > end) {
    munmap(reinterpret_cast<void*>(end), start + 2 * kAltStackSize - end);
  }
  return reinterpret_cast<void*>(aligned);
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
    if (signo == kick_signal()) return;
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
  // A kick meant for a run that has just ended can reach whatever the
  // thread runs next; its default action would end the process.
  if (!block->handler->handle_host_signal(signal) && signo != kick_signal()) {
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
    sa.sa_flags |= SA_RESTART;
    if (sigaction(kick_signal(), &sa, &previous_actions[kick_signal()]) != 0) {
      throw std::runtime_error("sigaction failed: " + std::string(strerror(errno)));
    }
  });
}

}  // namespace

int watchdog_signal() {
  return SIGRTMIN + 2;
}

int kick_signal() {
  return SIGRTMIN + 3;
}

void kick_thread(pid_t thread) {
  syscall(SYS_tgkill, getpid(), thread, kick_signal());
}

bool host_has_fsgsbase() {
  return (getauxval(AT_HWCAP2) & HWCAP2_FSGSBASE) != 0;
}

HostSignalThread::HostSignalThread() {
  stack_ = map_aligned_stack();
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
  void** slot =
      std::find_if(std::begin(registered_stacks), std::end(registered_stacks), [this](void*& s) {
        void* expected = nullptr;
        return __atomic_compare_exchange_n(&s, &expected, stack_, false, __ATOMIC_ACQ_REL,
                                           __ATOMIC_ACQUIRE);
      });
  if (slot == std::end(registered_stacks)) {
    sigaltstack(&previous_, nullptr);
    munmap(stack_, kAltStackSize);
    throw std::runtime_error("too many threads run guest code at once");
  }
  install_process_handlers();
}

HostSignalThread::~HostSignalThread() {
  sigaltstack(&previous_, nullptr);
  for (void*& slot : registered_stacks) {
    void* expected = stack_;
    if (__atomic_compare_exchange_n(&slot, &expected, nullptr, false, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE)) {
      break;
    }
  }
  munmap(stack_, kAltStackSize);
}

void HostSignalThread::set_handler(HostFaultHandler* handler) {
  static_cast<ThreadBlock*>(stack_)->handler = handler;
}

HostFaultHandler* HostSignalThread::handler() const {
  return static_cast<ThreadBlock*>(stack_)->handler;
}

}  // namespace bt86
