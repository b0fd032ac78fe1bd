// The flat harness's engine: guest memory and its window, the dispatch loop
// between the translation cache and C++, and the host fault handler.
//
// Memory: one memfd of memory_size bytes, mapped once for the VMM and twice
// in an 8 GiB + guard reservation, at its base (the window; host GS base =
// window base while guest code runs) and 4 GiB above (the mirror, for
// accesses through the routed FS that wrap). Everything else stays
// PROT_NONE, so any guest access there is a host SIGSEGV that becomes a
// guest #PF.
//
// Dispatch: look up or translate the unit at EIP, enter it, and act on the
// exit: link direct exits (chaining), fill the indirect lookup table on a
// miss, run callouts, report exceptions. Host faults inside the cache are
// turned into guest state by the signal handler (through
// recover_guest_state), which redirects the signal context to the cache's
// fault_exit stub so that enter() returns normally.
#include "runtime/flat_harness.h"

#include <absl/cleanup/cleanup.h>
#include <asm/prctl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <new>
#include <stdexcept>
#include <vector>

#include "runtime/cache_fault_exit.h"
#include "runtime/callouts.h"
#include "runtime/host_signals.h"
#include "runtime/segment_view.h"
#include "translator/fault_recovery.h"
#include "translator/translation_cache.h"
#include "translator/translator.h"
#include "translator/vcpu_context.h"

namespace bt86 {
namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kFourGiB = uint64_t{1} << 32;
// The window, its mirror and a guard. An access through the routed FS
// reaches window + FS base + offset, up to 8 GiB past the window; the mirror
// of guest memory at 4 GiB makes that wrap as linear addresses do.
constexpr uint64_t kGuard = 64u << 10;
constexpr uint64_t kWindowSpan = 2 * kFourGiB + kGuard;
constexpr uint32_t kGuestIf = eflags::kIf;

[[noreturn]] void fail(const char* what) {
  throw std::runtime_error(fmt::format("flat harness: {}: {}", what, strerror(errno)));
}

// What the signal handler found, for the dispatcher to report.
struct HostFaultReport {
  bool stop_requested = false;
  GuestException exception;
};

}  // namespace

class FlatHarness::Impl : public HostFaultHandler, public CodeSource, public GuestMemoryAccess {
 public:
  explicit Impl(const Options& options);
  ~Impl() override;

  std::span<uint8_t> memory() { return {vmm_view_, options_.memory_size}; }
  void set_page_access(uint32_t address, uint32_t length, PageAccess access);
  void invalidate(uint32_t address, uint32_t length);
  void flush_translations() { cache_.flush(); }
  FlatRunResult run(const CpuState& start);
  void request_stop();
  const ExecutionStats& stats() const;

  bool handle_host_signal(HostSignal& signal) override;
  size_t fetch(uint32_t eip, std::span<uint8_t> buffer, uint32_t* fault_error_code) override;
  bool read(uint32_t address, void* data, uint32_t size, GuestException* fault) override;
  bool write(uint32_t address, const void* data, uint32_t size, GuestException* fault) override;

 private:
  bool page_present(uint32_t address) const {
    return address < options_.memory_size && access_[address / kPage] != PageAccess::kNone;
  }
  bool check_access(uint32_t address, uint32_t size, bool is_write, GuestException* fault) const;
  void load_context(const CpuState& s);
  void save_context(CpuState& s) const;
  TranslationUnit& unit_for(uint32_t eip);
  void set_poll_page(bool armed);

  Options options_;
  int memfd_ = -1;
  uint8_t* vmm_view_ = nullptr;
  uint8_t* window_ = nullptr;
  std::vector<PageAccess> access_;
  VcpuContext* context_ = nullptr;
  // From the segments of the state a run starts with (no harness callout
  // loads a segment register).
  TranslationMode mode_;
  CodeSegment code_segment_;
  TranslationCache cache_;
  Translator translator_;
  std::atomic<bool> stop_requested_{false};
  // The thread inside run(), which request_stop() kicks; 0 outside run().
  std::atomic<pid_t> running_thread_{0};
  HostFaultReport fault_;
  mutable ExecutionStats stats_;
  uint64_t chained_exits_ = 0;
  uint64_t indirect_misses_ = 0;
  uint64_t callouts_ = 0;
};

FlatHarness::Impl::Impl(const Options& options)
    : options_(options),
      cache_(options.translation_cache_size),
      translator_(cache_, TranslatorOptions{.count_executed = options.count_executed}) {
  if (options.memory_size == 0 || options.memory_size % kPage != 0) {
    throw std::invalid_argument("flat harness: memory_size must be a non-zero multiple of 4 KiB");
  }
  memfd_ = memfd_create("bt86-guest-ram", MFD_CLOEXEC);
  if (memfd_ < 0 || ftruncate(memfd_, options.memory_size) != 0) fail("guest memory");
  void* view = mmap(nullptr, options.memory_size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd_, 0);
  if (view == MAP_FAILED) fail("guest memory mapping");
  vmm_view_ = static_cast<uint8_t*>(view);
  // A guard below the window too: nothing just below it is VMM memory.
  void* reservation = mmap(nullptr, kGuard + kWindowSpan, PROT_NONE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (reservation == MAP_FAILED) fail("window reservation");
  window_ = static_cast<uint8_t*>(reservation) + kGuard;
  for (const uint64_t at : {uint64_t{0}, kFourGiB}) {
    if (mmap(window_ + at, options.memory_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
             memfd_, 0) == MAP_FAILED) {
      fail("window mapping");
    }
  }
  access_.assign(options.memory_size / kPage, PageAccess::kReadWrite);
  void* ctx = mmap(nullptr, sizeof(VcpuContext), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (ctx == MAP_FAILED) fail("vCPU context");
  context_ = new (ctx) VcpuContext();
  context_->window_base = reinterpret_cast<uint64_t>(window_);
  context_->negative_window_base = 0 - context_->window_base;
}

FlatHarness::Impl::~Impl() {
  munmap(context_, sizeof(VcpuContext));
  munmap(window_ - kGuard, kGuard + kWindowSpan);
  munmap(vmm_view_, options_.memory_size);
  close(memfd_);
}

void FlatHarness::Impl::set_page_access(uint32_t address, uint32_t length, PageAccess access) {
  if (length == 0) return;
  const uint64_t first = address / kPage;
  const uint64_t end = (uint64_t{address} + length + kPage - 1) / kPage;
  if (end * kPage > options_.memory_size) {
    throw std::out_of_range("flat harness: set_page_access outside guest memory");
  }
  const int prot = access == PageAccess::kNone   ? PROT_NONE
                   : access == PageAccess::kRead ? PROT_READ
                                                 : PROT_READ | PROT_WRITE;
  for (const uint64_t at : {uint64_t{0}, kFourGiB}) {
    if (mprotect(window_ + at + first * kPage, (end - first) * kPage, prot) != 0) {
      fail("mprotect");
    }
  }
  for (uint64_t p = first; p < end; ++p) access_[p] = access;
}

void FlatHarness::Impl::invalidate(uint32_t address, uint32_t length) {
  const uint64_t end = std::min<uint64_t>(uint64_t{address} + length, 0xFFFFFFFFu);
  cache_.invalidate(address, static_cast<uint32_t>(end));
}

void FlatHarness::Impl::set_poll_page(bool armed) {
  mprotect(context_->poll_page, kPage, armed ? PROT_NONE : PROT_READ | PROT_WRITE);
}

void FlatHarness::Impl::request_stop() {
  stop_requested_.store(true);
  set_poll_page(true);
  if (const pid_t thread = running_thread_.load(); thread != 0) kick_thread(thread);
}

bool FlatHarness::Impl::check_access(uint32_t address, uint32_t size, bool is_write,
                                     GuestException* fault) const {
  for (uint32_t i = 0; i < size; ++i) {
    const uint32_t a = address + i;
    const bool present = page_present(a);
    const bool allowed = present && (!is_write || access_[a / kPage] == PageAccess::kReadWrite);
    if (!allowed) {
      *fault = {vector::kPf, (present ? 1u : 0u) | (is_write ? 2u : 0u), a};
      return false;
    }
  }
  return true;
}

bool FlatHarness::Impl::read(uint32_t address, void* data, uint32_t size, GuestException* fault) {
  if (!check_access(address, size, false, fault)) return false;
  for (uint32_t i = 0; i < size; ++i) static_cast<uint8_t*>(data)[i] = vmm_view_[address + i];
  return true;
}

bool FlatHarness::Impl::write(uint32_t address, const void* data, uint32_t size,
                              GuestException* fault) {
  if (!check_access(address, size, true, fault)) return false;
  for (uint32_t i = 0; i < size; ++i) vmm_view_[address + i] = static_cast<const uint8_t*>(data)[i];
  return true;
}

size_t FlatHarness::Impl::fetch(uint32_t eip, std::span<uint8_t> buffer,
                                uint32_t* fault_error_code) {
  size_t n = 0;
  for (; n < buffer.size(); ++n) {
    const uint32_t a = code_segment_.base + eip + static_cast<uint32_t>(n);
    if (!page_present(a)) break;
    buffer[n] = vmm_view_[a];
  }
  *fault_error_code = 0;  // Not present; fetches never hit a protection fault here.
  return n;
}

void FlatHarness::Impl::load_context(const CpuState& s) {
  for (int i = 0; i < 8; ++i) context_->gpr[i] = s.gpr[i];
  context_->eip = s.eip;
  context_->rflags = (s.eflags & kHostGuestFlags) | 0x2;
  context_->virtual_eflags =
      (s.eflags & ~static_cast<uint32_t>(kHostGuestFlags) & ~kGuestIf) | eflags::kFixed1;
  context_->virtual_if = (s.eflags & kGuestIf) ? 1 : 0;
  // No harness callout loads a segment register, so these hold for the run.
  for (int i = 0; i < kNumSegRegs; ++i) context_->selectors[i] = s.seg[i].selector;
  const SegmentView view = view_segments(s.seg, 0);
  mode_ = TranslationMode{};
  view.apply_to(mode_);
  code_segment_ = code_segment_of(s.segment(SegReg::kCs));
  std::copy(std::begin(view.checks), std::end(view.checks), std::begin(context_->segment_checks));
  context_->fs_window_base = context_->window_base + view.fs_base;
  context_->lookup_table = cache_.lookup_for_mode(mode_.key(), code_segment_).address();
  cache_.stubs().use_fpu_image(*context_, s.fpu.fxsave);
}

void FlatHarness::Impl::save_context(CpuState& s) const {
  for (int i = 0; i < 8; ++i) s.gpr[i] = context_->gpr[i];
  s.eip = context_->eip;
  s.eflags = static_cast<uint32_t>(context_->rflags & kHostGuestFlags) | context_->virtual_eflags |
             (context_->virtual_if ? kGuestIf : 0);
  std::memcpy(s.fpu.fxsave.data(), context_->fpu, sizeof context_->fpu);
}

TranslationUnit& FlatHarness::Impl::unit_for(uint32_t eip) {
  const uint32_t frame = (code_segment_.base + eip) >> 12;
  if (TranslationUnit* u = cache_.find(eip, frame, mode_, code_segment_)) return *u;
  return translator_.translate(UnitKey{eip, frame, mode_.key(), code_segment_}, mode_, *this);
}

bool FlatHarness::Impl::handle_host_signal(HostSignal& signal) {
  greg_t* g = signal.context->uc_mcontext.gregs;
  if (signal.signo == kick_signal()) {
    cache_.break_loop_at(static_cast<uint64_t>(g[REG_RIP]));
    return true;
  }
  RecoveredGuestState guest;
  if (!recover_signal_state(cache_, signal, context_->window_base, &guest)) return false;

  fault_ = {};
  const uint64_t address = reinterpret_cast<uint64_t>(signal.info->si_addr);
  const uint64_t window = reinterpret_cast<uint64_t>(window_);
  const uint64_t poll = reinterpret_cast<uint64_t>(context_->poll_page);
  switch (signal.signo) {
    case SIGSEGV:
      if (address - poll < kPage) {
        fault_.stop_requested = true;
      } else if (signal.info->si_code != SI_KERNEL && address - window < kWindowSpan) {
        const uint32_t guest_address = static_cast<uint32_t>(address - window);
        const uint32_t write = (g[REG_ERR] & 2) ? 2u : 0u;
        fault_.exception = {vector::kPf, (page_present(guest_address) ? 1u : 0u) | write,
                            guest_address};
      } else {
        fault_.exception = {vector::kGp, 0u, std::nullopt};
      }
      break;
    case SIGFPE:
      fault_.exception.vector = g[REG_TRAPNO] == 16   ? vector::kMf
                                : g[REG_TRAPNO] == 19 ? vector::kXm
                                                      : vector::kDe;
      break;
    case SIGILL:
      fault_.exception.vector = vector::kUd;
      break;
    case SIGTRAP:
      fault_.exception.vector = vector::kDb;
      break;
    default:
      fault_.exception = {vector::kGp, 0u, std::nullopt};
      break;
  }
  leave_through_fault_exit(cache_, *context_, signal, guest);
  return true;
}

FlatRunResult FlatHarness::Impl::run(const CpuState& start) {
  FlatRunResult result;
  result.state = start;
  load_context(start);
  HostSignalThread signals;
  signals.set_handler(this);
  running_thread_.store(static_cast<pid_t>(syscall(SYS_gettid)));
  const absl::Cleanup not_running = [this] { running_thread_.store(0); };
  if (syscall(SYS_arch_prctl, ARCH_SET_GS, reinterpret_cast<uint64_t>(window_)) != 0) {
    fail("setting the GS base");
  }
  const auto enter = cache_.stubs().enter_function();
  const auto stop = [&] {
    stop_requested_.store(false);
    set_poll_page(false);
    cache_.restore_loops();
    result.stop = FlatRunResult::Stop::kStopRequested;
  };
  while (true) {
    if (stop_requested_.load()) {
      stop();
      break;
    }
    TranslationUnit& unit = unit_for(context_->eip);
    enter(context_, unit.host_start);
    const uint32_t exit_id = context_->exit_id;
    if (exit_id == kExitHostFault) {
      if (fault_.stop_requested) {
        stop();
        break;
      }
      result.stop = FlatRunResult::Stop::kException;
      result.exception = fault_.exception;
      break;
    }
    if (exit_id == kExitIndirectMiss) {
      ++indirect_misses_;
      const uint32_t target = context_->eip;
      cache_.lookup_for_mode(mode_.key(), code_segment_)
          .insert(target, unit_for(target).host_start);
      continue;
    }
    const ExitRecord exit = cache_.exit(exit_id);
    if (exit.kind == ExitKind::kDirect) {
      const uint64_t flushes = cache_.flush_count();
      TranslationUnit& target = unit_for(exit.guest_target);
      if (cache_.flush_count() == flushes) {
        cache_.link(exit_id, target);
        ++chained_exits_;
      }
      continue;
    }
    save_context(result.state);
    if (exit.kind == ExitKind::kException) {
      result.state.eip = exit.guest_target;
      result.stop = FlatRunResult::Stop::kException;
      result.exception = GuestException{exit.vector, exit.error_code, exit.fault_address};
      break;
    }
    ++callouts_;
    DecodedInstruction d;
    uint8_t bytes[15];
    uint32_t ignored;
    const size_t n = fetch(exit.guest_target, bytes, &ignored);
    if (GuestDecoder().decode(exit.guest_target, {bytes, n}, &d, code_segment_.code_16) !=
        DecodeStatus::kOk) {
      result.stop = FlatRunResult::Stop::kException;
      result.exception = GuestException{vector::kUd, std::nullopt, std::nullopt};
      break;
    }
    const OpcodeEntry entry = classify(d);
    // The emitter sends string instructions through compensated segments,
    // and forms it has no translation for, to callouts classify() does not name.
    const bool emitter_choice =
        (exit.callout == CalloutId::kString && entry.emitter == Emitter::kString) ||
        exit.callout == CalloutId::kUnsupported;
    if (entry.callout != exit.callout && !emitter_choice) {
      // The guest rewrote this instruction after it was translated (the flat
      // harness does not trace code pages): run what is there now instead of
      // handing the callout an instruction it was not written for.
      cache_.invalidate(exit.guest_target, exit.guest_target + d.length());
      context_->eip = exit.guest_target;
      continue;
    }
    CalloutEnvironment env{result.state, *this, d};
    const CalloutResult r = callout_spec(exit.callout).function(env);
    if (r.action == CalloutResult::Action::kHalt) {
      result.stop = FlatRunResult::Stop::kHalt;
      return result;
    }
    if (r.action == CalloutResult::Action::kException) {
      result.stop = FlatRunResult::Stop::kException;
      result.exception = r.exception;
      return result;
    }
    load_context(result.state);
  }
  save_context(result.state);
  return result;
}

const ExecutionStats& FlatHarness::Impl::stats() const {
  const TranslatorStats& t = translator_.stats();
  stats_.units_translated = t.units_translated;
  stats_.guest_instructions_translated = t.guest_instructions_translated;
  stats_.host_code_bytes = t.host_code_bytes;
  const ExecutedTotals e = cache_.executed_totals();
  stats_.executed_instructions = e.instructions;
  stats_.executed_ident_instructions = e.ident;
  stats_.executed_compensated_instructions = e.compensated;
  stats_.executed_callout_instructions = e.callout;
  stats_.chained_exits = chained_exits_;
  stats_.indirect_lookups_missed = indirect_misses_;
  stats_.callouts = callouts_;
  stats_.cache_flushes = cache_.flush_count();
  return stats_;
}

FlatHarness::FlatHarness(const Options& options) : impl_(std::make_unique<Impl>(options)) {}
FlatHarness::~FlatHarness() = default;
std::span<uint8_t> FlatHarness::memory() {
  return impl_->memory();
}
void FlatHarness::set_page_access(uint32_t address, uint32_t length, PageAccess access) {
  impl_->set_page_access(address, length, access);
}
void FlatHarness::invalidate(uint32_t address, uint32_t length) {
  impl_->invalidate(address, length);
}
void FlatHarness::flush_translations() {
  impl_->flush_translations();
}
FlatRunResult FlatHarness::run(const CpuState& start) {
  return impl_->run(start);
}
void FlatHarness::request_stop() {
  impl_->request_stop();
}
const ExecutionStats& FlatHarness::stats() const {
  return impl_->stats();
}

CpuState FlatHarness::initial_state(uint32_t eip, uint32_t esp) {
  CpuState s;
  s.eip = eip;
  s.reg(Gpr::kEsp) = esp;
  s.eflags = eflags::kFixed1;
  s.segment(SegReg::kCs) = flat_segment(0x08, 0xB, 0);
  for (SegReg r : {SegReg::kEs, SegReg::kSs, SegReg::kDs, SegReg::kFs, SegReg::kGs}) {
    s.segment(r) = flat_segment(0x10, 0x3, 0);
  }
  s.cr0 = cr0::kPe | cr0::kEt;
  s.fpu = FpuState::reset_state();
  return s;
}

}  // namespace bt86
