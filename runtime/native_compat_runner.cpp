#include "runtime/native_compat_runner.h"

#include <asm/ldt.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace bt86 {

// Shared with the assembly below through fixed offsets (static_asserts).
struct alignas(64) NativeEntryBlock {
  uint8_t guest_fpu[512];
  uint8_t vmm_fpu[512];
  uint64_t vmm_rsp;
  uint64_t guest_eflags;
  uint32_t gpr[8];
  uint64_t vmm_fs_base;
  uint64_t vmm_gs_base;
  uint16_t vmm_fs_selector;
  uint16_t vmm_gs_selector;
  uint16_t vmm_ds_selector;
  uint16_t vmm_es_selector;
  uint16_t data_selector;
  uint16_t stub_selector;
  uint16_t stack_selector;
};

namespace {

constexpr uint64_t kFourGiB = 1ull << 32;
constexpr uint64_t kReserveStart = 0x1000;  // vm.mmap_min_addr
constexpr uint32_t kPage = 4096;

// LDT slots and their selectors (TI=1, RPL=3).
constexpr int kGuestCodeSlot = 0;
constexpr int kGuestDataSlot = 1;
constexpr int kStubCodeSlot = 2;
constexpr int kGuestCode16Slot = 3;
constexpr int kGuestStack16Slot = 4;
constexpr uint16_t selector_for(int slot) {
  return static_cast<uint16_t>(slot << 3 | 4 | 3);
}
constexpr uint16_t kGuestCs = selector_for(kGuestCodeSlot);
constexpr uint16_t kGuestDs = selector_for(kGuestDataSlot);
static_assert(kGuestCs == NativeCompatRunner::kCodeSelector);
static_assert(kGuestDs == NativeCompatRunner::kDataSelector);
constexpr uint16_t kStubCs = selector_for(kStubCodeSlot);
constexpr uint16_t kGuestCs16 = selector_for(kGuestCode16Slot);
static_assert(kGuestCs16 == NativeCompatRunner::kCode16Selector);
constexpr uint16_t kGuestSs16 = selector_for(kGuestStack16Slot);
static_assert(kGuestSs16 == NativeCompatRunner::kStack16Selector);
constexpr uint16_t kHostCs64 = 0x33;  // __USER_CS
constexpr uint16_t kHostSs = 0x2b;    // __USER_DS

// The stub (32-bit code at kStubBase, page 0) reads its operands from page 1:
//   mov esp, cs:[0x1000]        2E 8B 25 00 10 00 00
//   jmp far cs:[0x1008]         2E FF 2D 08 10 00 00
constexpr uint8_t kStubCode[] = {0x2E, 0x8B, 0x25, 0x00, 0x10, 0x00, 0x00,
                                 0x2E, 0xFF, 0x2D, 0x08, 0x10, 0x00, 0x00};
constexpr uint32_t kStubEspOffset = 0x1000;
constexpr uint32_t kStubTargetOffset = 0x1008;  // m16:32: EIP then CS.

uint64_t read_fs_base() {
  uint64_t v;
  asm volatile("rdfsbase %0" : "=r"(v));
  return v;
}
uint64_t read_gs_base() {
  uint64_t v;
  asm volatile("rdgsbase %0" : "=r"(v));
  return v;
}

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error(fmt::format("native runner: {}: {}", what, std::strerror(errno)));
}

void write_ldt(int slot, uint64_t base, uint32_t limit_pages_minus_1, int contents,
               bool read_exec_only, bool seg_32bit = true) {
  user_desc d{};
  d.entry_number = static_cast<unsigned>(slot);
  d.base_addr = static_cast<unsigned>(base);
  d.limit = limit_pages_minus_1;
  d.seg_32bit = seg_32bit ? 1 : 0;
  d.contents = static_cast<unsigned>(contents);
  d.read_exec_only = read_exec_only ? 1 : 0;
  d.limit_in_pages = 1;
  d.seg_not_present = 0;
  d.useable = 1;
  if (syscall(SYS_modify_ldt, 1, &d, sizeof d) != 0) fail("modify_ldt");
}

int prot_for(PageAccess access) {
  switch (access) {
    case PageAccess::kNone:
      return PROT_NONE;
    case PageAccess::kRead:
      return PROT_READ | PROT_EXEC;
    case PageAccess::kReadWrite:
      return PROT_READ | PROT_WRITE | PROT_EXEC;
  }
  return PROT_NONE;
}

bool has_error_code(uint8_t vector) {
  return vector == 8 || (vector >= 10 && vector <= 14) || vector == 17 || vector == 21;
}

}  // namespace

static_assert(offsetof(NativeEntryBlock, guest_fpu) == 0);
static_assert(offsetof(NativeEntryBlock, vmm_fpu) == 512);
static_assert(offsetof(NativeEntryBlock, vmm_rsp) == 1024);
static_assert(offsetof(NativeEntryBlock, guest_eflags) == 1032);
static_assert(offsetof(NativeEntryBlock, gpr) == 1040);
static_assert(offsetof(NativeEntryBlock, vmm_fs_base) == 1072);
static_assert(offsetof(NativeEntryBlock, vmm_gs_base) == 1080);
static_assert(offsetof(NativeEntryBlock, vmm_fs_selector) == 1088);
static_assert(offsetof(NativeEntryBlock, data_selector) == 1096);
static_assert(offsetof(NativeEntryBlock, stub_selector) == 1098);
static_assert(offsetof(NativeEntryBlock, stack_selector) == 1100);

}  // namespace bt86

extern "C" void bt86_native_enter(bt86::NativeEntryBlock* block);
extern "C" char bt86_native_return[];

// Entry saves the callee-saved registers and the block pointer on the VMM
// stack and records RSP in the block; the signal handler resumes at
// bt86_native_return with that RSP, which undoes everything in reverse.
asm(R"(
  .text
  .globl bt86_native_enter
  .type bt86_native_enter, @function
bt86_native_enter:
  push %rbp
  push %rbx
  push %r12
  push %r13
  push %r14
  push %r15
  push %rdi
  mov %rsp, 1024(%rdi)
  fxsave 512(%rdi)
  fxrstor 0(%rdi)
  movw %fs, 1088(%rdi)
  movw %gs, 1090(%rdi)
  movw %ds, 1092(%rdi)
  movw %es, 1094(%rdi)
  movzwl 1098(%rdi), %eax
  push %rax
  push $0
  pushq 1032(%rdi)
  movzwl 1096(%rdi), %eax
  mov %eax, %ds
  mov %eax, %es
  mov %eax, %fs
  mov %eax, %gs
  movzwl 1100(%rdi), %eax
  mov %eax, %ss
  popfq
  mov 1040(%rdi), %eax
  mov 1044(%rdi), %ecx
  mov 1048(%rdi), %edx
  mov 1052(%rdi), %ebx
  mov 1060(%rdi), %ebp
  mov 1064(%rdi), %esi
  mov 1068(%rdi), %edi
  lretq
  .size bt86_native_enter, .-bt86_native_enter

  .globl bt86_native_return
  .type bt86_native_return, @function
bt86_native_return:
  mov (%rsp), %rdi
  movw 1092(%rdi), %ds
  movw 1094(%rdi), %es
  movw 1088(%rdi), %fs
  movw 1090(%rdi), %gs
  mov 1072(%rdi), %rax
  wrfsbase %rax
  mov 1080(%rdi), %rax
  wrgsbase %rax
  fxrstor 512(%rdi)
  pop %rdi
  pop %r15
  pop %r14
  pop %r13
  pop %r12
  pop %rbx
  pop %rbp
  ret
  .size bt86_native_return, .-bt86_native_return
)");

namespace bt86 {

NativeCompatRunner::NativeCompatRunner(HostSignalThread& signals, const Options& options)
    : signals_(signals), memory_size_(options.memory_size), timeout_ms_(options.timeout_ms) {
  if (memory_size_ <= kPage || memory_size_ % kPage != 0 || memory_size_ > (2u << 30)) {
    throw std::invalid_argument(
        fmt::format("native runner: memory size {:#x} is not a multiple of 4 KiB in (4 KiB, 2 GiB]",
                    memory_size_));
  }
  if (!host_has_fsgsbase()) {
    throw std::runtime_error("native runner: the host does not allow FSGSBASE in user space");
  }
  void* low = mmap(reinterpret_cast<void*>(kReserveStart), kFourGiB - kReserveStart, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
  if (low == MAP_FAILED) fail("cannot reserve the low 4 GiB (is something mapped there?)");
  reserved_ = true;
  try {
    memfd_ = memfd_create("bt86-native-guest", MFD_CLOEXEC);
    if (memfd_ < 0) fail("memfd_create");
    if (ftruncate(memfd_, memory_size_) != 0) fail("ftruncate");
    void* vmm = mmap(nullptr, memory_size_, PROT_READ | PROT_WRITE, MAP_SHARED, memfd_, 0);
    if (vmm == MAP_FAILED) fail("mmap of the VMM view");
    vmm_view_ = static_cast<uint8_t*>(vmm);
    // Guest page 0 stays unmapped: host page 0 is below vm.mmap_min_addr.
    if (mmap(reinterpret_cast<void*>(kGuestBase + kPage), memory_size_ - kPage,
             prot_for(PageAccess::kReadWrite), MAP_SHARED | MAP_FIXED | MAP_POPULATE, memfd_,
             kPage) == MAP_FAILED) {
      fail("mmap of the guest view");
    }
    auto* stub = static_cast<uint8_t*>(mmap(reinterpret_cast<void*>(kStubBase), 2 * kPage,
                                            PROT_READ | PROT_WRITE,
                                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
    if (stub == MAP_FAILED) fail("mmap of the entry stub");
    std::memcpy(stub, kStubCode, sizeof kStubCode);
    if (mprotect(stub, kPage, PROT_READ | PROT_EXEC) != 0) fail("mprotect of the entry stub");

    const uint32_t all_pages = 0xFFFFF;
    write_ldt(kGuestCodeSlot, kGuestBase, all_pages, MODIFY_LDT_CONTENTS_CODE, false);
    write_ldt(kGuestDataSlot, kGuestBase, all_pages, MODIFY_LDT_CONTENTS_DATA, false);
    write_ldt(kStubCodeSlot, kStubBase, 1, MODIFY_LDT_CONTENTS_CODE, false);
    write_ldt(kGuestCode16Slot, kGuestBase, all_pages, MODIFY_LDT_CONTENTS_CODE, false, false);
    write_ldt(kGuestStack16Slot, kGuestBase, all_pages, MODIFY_LDT_CONTENTS_DATA, false, false);

    block_ = new NativeEntryBlock{};
    alignas(16) uint8_t probe[512] = {};
    asm volatile("fxsave %0" : "=m"(probe));
    std::memcpy(&mxcsr_mask_, probe + 28, sizeof mxcsr_mask_);
    if (mxcsr_mask_ == 0) mxcsr_mask_ = 0xFFBF;  // SDM: zero means the default mask.

    sigevent ev{};
    ev.sigev_notify = SIGEV_THREAD_ID;
    ev.sigev_signo = watchdog_signal();
    ev._sigev_un._tid = static_cast<pid_t>(syscall(SYS_gettid));
    if (timer_create(CLOCK_MONOTONIC, &ev, &timer_) != 0) fail("timer_create");
    have_timer_ = true;
  } catch (...) {
    release();
    throw;
  }
}

NativeCompatRunner::~NativeCompatRunner() {
  release();
}

void NativeCompatRunner::release() {
  if (have_timer_) timer_delete(timer_);
  have_timer_ = false;
  delete block_;
  block_ = nullptr;
  if (vmm_view_ != nullptr) munmap(vmm_view_, memory_size_);
  vmm_view_ = nullptr;
  if (memfd_ >= 0) close(memfd_);
  memfd_ = -1;
  if (reserved_) munmap(reinterpret_cast<void*>(kReserveStart), kFourGiB - kReserveStart);
  reserved_ = false;
}

void NativeCompatRunner::set_page_access(uint32_t address, uint32_t length, PageAccess access) {
  if (address % kPage != 0 || length % kPage != 0 || address < kPage ||
      uint64_t{address} + length > memory_size_) {
    throw std::invalid_argument(fmt::format(
        "native runner: page access range {:#x}+{:#x} is not whole pages inside the image "
        "above page 0",
        address, length));
  }
  auto* guest = reinterpret_cast<uint8_t*>(kGuestBase + address);
  if (mprotect(guest, length, prot_for(access)) != 0) fail("mprotect");
  // Keep the page-table entries present so that a write to a read-only page
  // reports P=1 as the hardware (and the harness) would.
  if (access != PageAccess::kNone) {
    for (uint32_t off = 0; off < length; off += kPage) {
      asm volatile("" ::"r"(*static_cast<volatile uint8_t*>(guest + off)));
    }
  }
}

FlatRunResult NativeCompatRunner::run(const CpuState& start) {
  uint32_t mxcsr;
  std::memcpy(&mxcsr, &start.fpu.fxsave[24], sizeof mxcsr);
  if ((mxcsr & ~mxcsr_mask_) != 0) {
    throw std::invalid_argument(fmt::format(
        "native runner: MXCSR {:#x} sets reserved bits (mask {:#x})", mxcsr, mxcsr_mask_));
  }
  FlatRunResult result;
  result.state = start;

  NativeEntryBlock& b = *block_;
  std::memcpy(b.guest_fpu, start.fpu.fxsave.data(), sizeof b.guest_fpu);
  b.guest_eflags = (start.eflags & (eflags::kArith | eflags::kDf)) | eflags::kFixed1 | eflags::kIf;
  for (int i = 0; i < kNumGprs; ++i) b.gpr[i] = start.gpr[i];
  b.vmm_fs_base = read_fs_base();
  b.vmm_gs_base = read_gs_base();
  b.data_selector = kGuestDs;
  const Segment& stack = start.segment(SegReg::kSs);
  b.stack_selector = stack.present && !stack.db ? kGuestSs16 : kGuestDs;
  b.stub_selector = kStubCs;
  auto* stub_data = reinterpret_cast<uint8_t*>(kStubBase);
  const uint32_t esp = start.reg(Gpr::kEsp);
  std::memcpy(stub_data + kStubEspOffset, &esp, 4);
  std::memcpy(stub_data + kStubTargetOffset, &start.eip, 4);
  const Segment& code = start.segment(SegReg::kCs);
  const uint16_t cs = code.present && !code.db ? kGuestCs16 : kGuestCs;
  std::memcpy(stub_data + kStubTargetOffset + 4, &cs, 2);

  HostFaultHandler* previous = signals_.handler();
  signals_.set_handler(this);
  current_ = &result;
  stub_fault_ = false;
  const timespec period{static_cast<time_t>(timeout_ms_ / 1000),
                        static_cast<long>(timeout_ms_ % 1000) * 1000000L};
  itimerspec armed{period, period};
  if (timer_settime(timer_, 0, &armed, nullptr) != 0) fail("timer_settime");

  bt86_native_enter(block_);

  itimerspec disarmed{};
  timer_settime(timer_, 0, &disarmed, nullptr);
  current_ = nullptr;
  signals_.set_handler(previous);
  if (stub_fault_) {
    throw std::runtime_error("native runner: fault inside the entry stub (runner bug)");
  }
  return result;
}

bool NativeCompatRunner::handle_host_signal(HostSignal& signal) {
  // A FlatHarness's stop request that reached this thread after its run
  // ended (the difftest alternates both on one thread): not guest state.
  if (signal.signo == kick_signal()) return true;
  greg_t* g = signal.context->uc_mcontext.gregs;
  const auto cs = static_cast<uint16_t>(g[REG_CSGSFS] & 0xFFFF);
  if (current_ == nullptr || (cs != kGuestCs && cs != kGuestCs16 && cs != kStubCs)) {
    // A timer tick that raced with the end of a run is harmless; anything
    // else outside guest code is a VMM fault that must not be swallowed.
    return signal.signo == watchdog_signal();
  }
  FlatRunResult& r = *current_;
  CpuState& s = r.state;
  const int regs[kNumGprs] = {REG_RAX, REG_RCX, REG_RDX, REG_RBX,
                              REG_RSP, REG_RBP, REG_RSI, REG_RDI};
  for (int i = 0; i < kNumGprs; ++i) s.gpr[i] = static_cast<uint32_t>(g[regs[i]]);
  // RIP is the offset within CS (not a linear address) in compatibility mode;
  // the guest CS base is 0, so it is the guest EIP.
  s.eip = static_cast<uint32_t>(g[REG_RIP]);
  s.eflags = static_cast<uint32_t>(g[REG_EFL]) & ~eflags::kRf;
  if (signal.context->uc_mcontext.fpregs != nullptr) {
    std::memcpy(s.fpu.fxsave.data(), signal.context->uc_mcontext.fpregs, s.fpu.fxsave.size());
  }
  stub_fault_ = cs == kStubCs;

  const auto vector = static_cast<uint8_t>(g[REG_TRAPNO]);
  const auto error = static_cast<uint32_t>(g[REG_ERR]);
  const bool at_hlt = s.eip < memory_size_ && vmm_view_[s.eip] == 0xF4;
  if (signal.signo == watchdog_signal()) {
    r.stop = FlatRunResult::Stop::kStopRequested;
  } else if (signal.signo == SIGSEGV && vector == vector::kGp && error == 0 && at_hlt) {
    r.stop = FlatRunResult::Stop::kHalt;
  } else {
    r.stop = FlatRunResult::Stop::kException;
    GuestException e;
    e.vector = vector;
    if (vector == vector::kPf) {
      e.error_code = error & 3;  // P and W/R; U/S and I/D are host artefacts.
      e.fault_address = static_cast<uint32_t>(static_cast<uint64_t>(g[REG_CR2]) - kGuestBase);
    } else if (has_error_code(vector)) {
      e.error_code = error;
    }
    r.exception = e;
  }

  g[REG_RIP] = reinterpret_cast<greg_t>(bt86_native_return);
  g[REG_RSP] = static_cast<greg_t>(block_->vmm_rsp);
  g[REG_EFL] = 0x202;
  // REG_CSGSFS packs CS, GS, FS and SS (16 bits each, low to high); the
  // kernel reloads CS and SS from it on sigreturn.
  uint64_t csgsfs = static_cast<uint64_t>(g[REG_CSGSFS]);
  csgsfs = (csgsfs & 0x0000FFFFFFFF0000ull) | kHostCs64 | (uint64_t{kHostSs} << 48);
  g[REG_CSGSFS] = static_cast<greg_t>(csgsfs);
  signal.resume_fs_base = block_->vmm_fs_base;
  return true;
}

}  // namespace bt86
