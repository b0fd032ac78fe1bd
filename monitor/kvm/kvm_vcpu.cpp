#include "monitor/kvm/kvm_vcpu.h"

#include <sys/mman.h>

#include <cerrno>
#include <span>
#include <system_error>
#include <vector>

#include <fmt/format.h>

#include "monitor/kvm/kvm_ioctl_numbers.h"
#include "monitor/machine.h"

namespace bt86 {

namespace {

// Intel VMX without unrestricted guest needs three pages for a real-mode
// TSS; they go where QEMU puts them, at the top of the MMIO hole, away from
// every device bt86 maps. SVM ignores it.
constexpr uint64_t kTssAddress = 0xFFFBD000;

// When no device has a deadline, KVM_RUN is still interrupted this often so
// that a stop requested through the Machine alone (a --timeout watchdog that
// does not know the vCPU) is seen within bounded time.
constexpr uint64_t kMaxRunSliceNs = 20'000'000;

constexpr size_t kMaxInstructionBytes = 15;

const char* internal_suberror_name(uint32_t suberror) {
  switch (suberror) {
    case KVM_INTERNAL_ERROR_EMULATION:
      return "KVM's instruction emulator cannot execute it";
    case KVM_INTERNAL_ERROR_SIMUL_EX:
      return "an exception while delivering an exception";
    case KVM_INTERNAL_ERROR_DELIVERY_EV:
      return "an event could not be delivered";
    case KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON:
      return "an unexpected hardware exit";
  }
  return "unknown suberror";
}

}  // namespace

KvmVcpu::KvmVcpu(const KvmFd& kvm, Machine& machine, bool use_xsave)
    : machine_(machine), use_xsave_(use_xsave) {
  vm_ = KvmFd(kvm.ioctl_or_throw(KVM_CREATE_VM, "KVM_CREATE_VM", 0));
  vm_.ioctl_or_throw(KVM_SET_TSS_ADDR, "KVM_SET_TSS_ADDR", kTssAddress);
  create_memory_slots();
  vcpu_ = KvmFd(vm_.ioctl_or_throw(KVM_CREATE_VCPU, "KVM_CREATE_VCPU", 0));
  run_size_ =
      static_cast<size_t>(kvm.ioctl_or_throw(KVM_GET_VCPU_MMAP_SIZE, "KVM_GET_VCPU_MMAP_SIZE", 0));
  void* run = mmap(nullptr, run_size_, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu_.get(), 0);
  if (run == MAP_FAILED) {
    throw std::system_error(errno, std::generic_category(), "mmap of the KVM vCPU run area");
  }
  run_ = static_cast<kvm_run*>(run);
  set_cpuid();
}

KvmVcpu::~KvmVcpu() {
  if (run_) munmap(run_, run_size_);
}

// One slot per maximal run of guest-physical space that is backed by the
// memfd and is not MMIO. The legacy 640 KiB-1 MiB area is included (it is
// in the memfd, reads as zeros as under the BT backend), so that a kernel
// scanning the BIOS area for tables reads memory instead of taking an exit
// per load.
void KvmVcpu::create_memory_slots() {
  GuestMemory& memory = machine_.memory();
  struct Span {
    uint64_t base, end;
  };
  std::vector<Span> spans;
  for (const MemoryRegion& r : machine_.memory_map().regions()) {
    if (r.kind == RegionKind::kMmio) continue;
    const uint64_t end = std::min<uint64_t>(r.end(), memory.size());
    if (r.base >= end) continue;
    if (!spans.empty() && spans.back().end == r.base) {
      spans.back().end = end;
    } else {
      spans.push_back({r.base, end});
    }
  }
  uint32_t slot = 0;
  for (const Span& s : spans) {
    kvm_userspace_memory_region region{};
    region.slot = slot++;
    region.guest_phys_addr = s.base;
    region.memory_size = s.end - s.base;
    region.userspace_addr = reinterpret_cast<uint64_t>(memory.host_base() + s.base);
    vm_.ioctl_or_throw(KVM_SET_USER_MEMORY_REGION, "KVM_SET_USER_MEMORY_REGION", &region);
  }
}

void KvmVcpu::set_cpuid() {
  const auto& entries = machine_.cpuid().entries();
  // struct kvm_cpuid2 with its flexible array laid out by hand (see
  // KvmMsrBlock for why the header's struct cannot be embedded in C++).
  std::vector<uint8_t> buffer(8 + entries.size() * sizeof(kvm_cpuid_entry2));
  const uint32_t count = static_cast<uint32_t>(entries.size());
  std::memcpy(buffer.data(), &count, sizeof count);
  auto* out = reinterpret_cast<kvm_cpuid_entry2*>(buffer.data() + 8);
  for (size_t i = 0; i < entries.size(); ++i) {
    kvm_cpuid_entry2 e{};
    e.function = entries[i].leaf;
    e.index = entries[i].subleaf;
    e.flags = entries[i].subleaf_significant ? KVM_CPUID_FLAG_SIGNIFCANT_INDEX : 0;
    e.eax = entries[i].result.eax;
    e.ebx = entries[i].result.ebx;
    e.ecx = entries[i].result.ecx;
    e.edx = entries[i].result.edx;
    out[i] = e;
  }
  vcpu_.ioctl_or_throw(kvm_ioctl::kSetCpuid2, "KVM_SET_CPUID2", buffer.data());
}

CpuState KvmVcpu::state() const {
  KvmVcpuImage image;
  vcpu_.ioctl_or_throw(KVM_GET_REGS, "KVM_GET_REGS", &image.regs);
  vcpu_.ioctl_or_throw(KVM_GET_SREGS, "KVM_GET_SREGS", &image.sregs);
  vcpu_.ioctl_or_throw(KVM_GET_DEBUGREGS, "KVM_GET_DEBUGREGS", &image.debugregs);
  vcpu_.ioctl_or_throw(KVM_GET_VCPU_EVENTS, "KVM_GET_VCPU_EVENTS", &image.events);
  image.msrs = kvm_msr_request();
  const int got = vcpu_.ioctl_or_throw(kvm_ioctl::kGetMsrs, "KVM_GET_MSRS", &image.msrs);
  image.msrs.nmsrs = static_cast<uint32_t>(got);
  if (use_xsave_) {
    vcpu_.ioctl_or_throw(kvm_ioctl::kGetXsave, "KVM_GET_XSAVE", &image.xsave);
  }
  CpuState s = to_cpu_state(image);
  if (!use_xsave_) {
    kvm_fpu fpu{};
    vcpu_.ioctl_or_throw(KVM_GET_FPU, "KVM_GET_FPU", &fpu);
    read_kvm_fpu(fpu, s.fpu);
  }
  s.events.halted = halted_;
  return s;
}

void KvmVcpu::set_state(const CpuState& state) {
  KvmVcpuImage image = to_kvm_image(state);
  // Read-modify-write: kvm_sregs also holds apic_base and cr8, which bt86
  // does not manage.
  kvm_sregs sregs{};
  vcpu_.ioctl_or_throw(KVM_GET_SREGS, "KVM_GET_SREGS", &sregs);
  fill_kvm_sregs(state, sregs);
  // The machine has no local APIC (see the CPUID model), but KVM derives
  // CPUID.1:EDX.APIC from the APIC base MSR's enable bit, which it sets at
  // vCPU creation: left alone, Linux finds an APIC whose registers read as
  // all-ones and spends half a minute in exits polling them.
  sregs.apic_base = 0;
  // Segments and control registers first: the mode decides how KVM reads
  // the rest.
  vcpu_.ioctl_or_throw(KVM_SET_SREGS, "KVM_SET_SREGS", &sregs);
  vcpu_.ioctl_or_throw(KVM_SET_REGS, "KVM_SET_REGS", &image.regs);
  const int set = vcpu_.ioctl_or_throw(kvm_ioctl::kSetMsrs, "KVM_SET_MSRS", &image.msrs);
  if (set != static_cast<int>(KvmMsrBlock::kCount)) {
    throw std::runtime_error(fmt::format("KVM_SET_MSRS refused MSR {:#x}",
                                         image.msrs.entries[static_cast<size_t>(set)].index));
  }
  if (use_xsave_) {
    vcpu_.ioctl_or_throw(kvm_ioctl::kSetXsave, "KVM_SET_XSAVE", &image.xsave);
  } else {
    kvm_fpu fpu{};
    fill_kvm_fpu(state.fpu, fpu);
    vcpu_.ioctl_or_throw(KVM_SET_FPU, "KVM_SET_FPU", &fpu);
  }
  vcpu_.ioctl_or_throw(KVM_SET_DEBUGREGS, "KVM_SET_DEBUGREGS", &image.debugregs);
  vcpu_.ioctl_or_throw(KVM_SET_VCPU_EVENTS, "KVM_SET_VCPU_EVENTS", &image.events);
  halted_ = state.events.halted;
  halted_with_if_ = (state.eflags & eflags::kIf) != 0;
}

void KvmVcpu::request_stop() {
  stop_requested_.store(true, std::memory_order_release);
  // Both: immediate_exit covers a stop that lands before KVM_RUN is entered,
  // the signal one that lands while the guest runs.
  if (run_) __atomic_store_n(&run_->immediate_exit, 1, __ATOMIC_RELEASE);
  kicker_.kick();
  machine_.wake();
}

VcpuExit KvmVcpu::exit_for_machine_stop() {
  const StopRequest stop = *machine_.stop_request();
  switch (stop.kind) {
    case StopRequest::Kind::kDebugExit:
      return {VcpuExit::Kind::kDebugExit, stop.status, "the guest wrote to the debug-exit port"};
    case StopRequest::Kind::kReset:
      return {VcpuExit::Kind::kReset, 0, "the guest reset the machine"};
    case StopRequest::Kind::kUserQuit:
      return {VcpuExit::Kind::kStopRequested, 0, "the user quit"};
    case StopRequest::Kind::kTimeout:
      return {VcpuExit::Kind::kStopRequested, 0, "the timeout expired"};
    case StopRequest::Kind::kSignal:
      return {VcpuExit::Kind::kStopRequested, stop.status,
              fmt::format("stopped by signal {}", stop.status)};
  }
  return {VcpuExit::Kind::kStopRequested, 0, "stop requested"};
}

bool KvmVcpu::wait_while_halted(VcpuExit& exit) {
  while (halted_) {
    if (machine_.stop_request() || stop_requested_.load(std::memory_order_acquire)) return true;
    if (machine_.interrupt_pending() && halted_with_if_) {
      halted_ = false;
      return true;
    }
    if (!halted_with_if_) {
      // hlt with IF clear: only an NMI could wake it, and bt86 raises none.
      exit = {
          VcpuExit::Kind::kPowerOff, 0,
          fmt::format("the guest halted with interrupts disabled ({})", describe_guest_position())};
      return false;
    }
    machine_.wait_for_event(machine_.next_deadline_ns());
    machine_.service_events();
  }
  return true;
}

void KvmVcpu::inject_or_request_window() {
  if (!machine_.interrupt_pending()) {
    run_->request_interrupt_window = 0;
    return;
  }
  if (run_->ready_for_interrupt_injection && run_->if_flag) {
    kvm_interrupt irq{};
    irq.irq = machine_.acknowledge_interrupt();
    vcpu_.ioctl_or_throw(KVM_INTERRUPT, "KVM_INTERRUPT", &irq);
    ++counters_.interrupts_injected;
    run_->request_interrupt_window = 0;
  } else {
    run_->request_interrupt_window = 1;
  }
}

void KvmVcpu::arm_kick_timer() {
  const uint64_t now = machine_.clock().now_ns();
  uint64_t slice = kMaxRunSliceNs;
  if (auto deadline = machine_.next_deadline_ns()) {
    slice = *deadline > now ? std::min(slice, *deadline - now) : 1;
  }
  kicker_.arm_after_ns(slice);
}

VcpuExit KvmVcpu::run() {
  try {
    return run_loop();
  } catch (const std::exception& e) {
    return {VcpuExit::Kind::kError, 0, e.what()};
  }
}

void KvmVcpu::set_guest_debug(const kvm_guest_debug& debug) {
  vcpu_.ioctl_or_throw(KVM_SET_GUEST_DEBUG, "KVM_SET_GUEST_DEBUG", &debug);
}

VcpuExit KvmVcpu::run_loop() {
  kicker_.attach_to_current_thread(vcpu_);
  for (;;) {
    if (stop_requested_.exchange(false, std::memory_order_acq_rel)) {
      __atomic_store_n(&run_->immediate_exit, 0, __ATOMIC_RELEASE);
      return {VcpuExit::Kind::kStopRequested, 0, "stop requested"};
    }
    if (machine_.stop_request()) return exit_for_machine_stop();

    const auto deadline = machine_.next_deadline_ns();
    if (deadline && machine_.clock().now_ns() >= *deadline) machine_.service_events();

    VcpuExit exit;
    if (!wait_while_halted(exit)) return exit;
    if (halted_) continue;  // Woken for a stop: handled at the top.

    inject_or_request_window();
    arm_kick_timer();
    ++counters_.runs;
    if (ioctl(vcpu_.get(), KVM_RUN, 0) < 0) {
      const int err = errno;
      if (err == EINTR || err == EAGAIN) {
        kicker_.consume_pending();
        continue;
      }
      return {
          VcpuExit::Kind::kError, 0,
          fmt::format("KVM_RUN failed: {} ({})", std::strerror(err), describe_guest_position())};
    }

    switch (run_->exit_reason) {
      case KVM_EXIT_IO:
        handle_port_io();
        break;
      case KVM_EXIT_MMIO:
        handle_mmio();
        break;
      case KVM_EXIT_HLT:
        ++counters_.halts;
        halted_ = true;
        halted_with_if_ = run_->if_flag != 0;
        break;
      case KVM_EXIT_IRQ_WINDOW_OPEN:
      case KVM_EXIT_INTR:
        kicker_.consume_pending();
        break;
      case KVM_EXIT_DEBUG:
        last_debug_exit_ = run_->debug.arch;
        return {VcpuExit::Kind::kStopRequested, 0, "debug exit"};
      case KVM_EXIT_SHUTDOWN:
        return {VcpuExit::Kind::kTripleFault, 0, shutdown_message()};
      case KVM_EXIT_INTERNAL_ERROR:
        return {VcpuExit::Kind::kError, 0, internal_error_message()};
      case KVM_EXIT_FAIL_ENTRY:
        return {
            VcpuExit::Kind::kError, 0,
            fmt::format("KVM could not enter the guest (hardware entry failure reason {:#x}) "
                        "at {}",
                        run_->fail_entry.hardware_entry_failure_reason, describe_guest_position())};
      default:
        return {VcpuExit::Kind::kError, 0,
                fmt::format("unexpected KVM exit reason {} at {}", run_->exit_reason,
                            describe_guest_position())};
    }
  }
}

void KvmVcpu::handle_port_io() {
  ++counters_.port_io;
  auto* data = reinterpret_cast<uint8_t*>(run_) + run_->io.data_offset;
  const size_t size = run_->io.size;
  for (uint32_t i = 0; i < run_->io.count; ++i) {
    std::span<uint8_t> item(data + i * size, size);
    if (run_->io.direction == KVM_EXIT_IO_OUT) {
      machine_.ports().write(run_->io.port, item);
    } else {
      machine_.ports().read(run_->io.port, item);
    }
  }
}

void KvmVcpu::handle_mmio() {
  ++counters_.mmio;
  std::span<uint8_t> data(run_->mmio.data, run_->mmio.len);
  if (run_->mmio.is_write) {
    machine_.mmio().write(run_->mmio.phys_addr, data);
  } else {
    machine_.mmio().read(run_->mmio.phys_addr, data);
  }
}

std::string KvmVcpu::describe_guest_position() const {
  kvm_regs regs{};
  kvm_sregs sregs{};
  if (ioctl(vcpu_.get(), KVM_GET_REGS, &regs) < 0 ||
      ioctl(vcpu_.get(), KVM_GET_SREGS, &sregs) < 0) {
    return "an unknown guest position (the vCPU registers cannot be read)";
  }
  const uint32_t eip = static_cast<uint32_t>(regs.rip);
  const uint32_t linear = static_cast<uint32_t>(sregs.cs.base) + eip;
  std::string text = fmt::format("guest EIP {:#010x} (CS {:#06x}, linear {:#010x})", eip,
                                 sregs.cs.selector, linear);
  kvm_translation t{};
  t.linear_address = linear;
  if (ioctl(vcpu_.get(), KVM_TRANSLATE, &t) < 0 || !t.valid) {
    return text + ", instruction bytes unreadable (linear address not mapped)";
  }
  const GuestMemory& memory = machine_.memory();
  size_t n = kMaxInstructionBytes;
  while (n > 0 && !memory.contains(t.physical_address, n)) --n;
  // Stay within the page: the next one may map elsewhere.
  n = std::min<size_t>(n, 0x1000 - (linear & 0xFFF));
  if (n == 0) {
    return text + fmt::format(", instruction bytes unreadable (physical {:#x} is not RAM)",
                              t.physical_address);
  }
  std::vector<uint8_t> bytes(n);
  memory.read(t.physical_address, bytes);
  text += fmt::format(", instruction bytes at physical {:#x}:", t.physical_address);
  for (uint8_t b : bytes) text += fmt::format(" {:02x}", b);
  return text;
}

// AMD SVM leaves the VMCB undefined after a shutdown intercept, so KVM
// resets the vCPU before reporting it: the registers then show the reset
// vector in real mode, not where the guest was. Say so rather than print a
// position the guest never ran at.
std::string KvmVcpu::shutdown_message() const {
  std::string text =
      "the guest triple-faulted (shutdown: an exception while delivering a double fault)";
  kvm_sregs sregs{};
  if (ioctl(vcpu_.get(), KVM_GET_SREGS, &sregs) == 0 && (sregs.cr0 & cr0::kPe) == 0) {
    return text +
           "; KVM reset the vCPU on shutdown (AMD SVM), so the faulting guest position is "
           "not available";
  }
  return text + " at " + describe_guest_position();
}

std::string KvmVcpu::internal_error_message() const {
  std::string text =
      fmt::format("KVM internal error {} ({}) at {}", run_->internal.suberror,
                  internal_suberror_name(run_->internal.suberror), describe_guest_position());
  if (run_->internal.ndata > 0) {
    text += "; KVM data:";
    for (uint32_t i = 0; i < run_->internal.ndata && i < 16; ++i) {
      text += fmt::format(" {:#x}", run_->internal.data[i]);
    }
  }
  return text;
}

}  // namespace bt86
