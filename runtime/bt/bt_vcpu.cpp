#include "runtime/bt/bt_vcpu.h"

#include <sys/mman.h>
#include <unistd.h>
#include <x86intrin.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <new>
#include <stdexcept>

#include <fmt/format.h>

#include "runtime/cache_fault_exit.h"
#include "runtime/segment_view.h"
#include "runtime/system/event_delivery.h"
#include "runtime/system/guest_access.h"
#include "runtime/system/instruction_operands.h"
#include "runtime/system/system_instructions.h"

namespace bt86 {
namespace {

// Whether the meaning of G=1 entries differs: then global units are not
// what they were either.
bool global_meaning_differs(const PagingMode& a, const PagingMode& b) {
  return a.pse != b.pse || a.wp != b.wp || a.pge != b.pge;
}

constexpr uint32_t kPage = 4096;
constexpr int kMaxOpenedPages = 8;

uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000 + static_cast<uint64_t>(ts.tv_nsec);
}

// The page that stands for physical addresses without RAM: reads give zeros
// (QEMU's unassigned memory reads as zero too), stores are discarded.
UnassignedPage make_unassigned_page() {
  UnassignedPage page;
  page.fd = memfd_create("bt86-unassigned", MFD_CLOEXEC);
  if (page.fd < 0 || ftruncate(page.fd, 4096) != 0) {
    throw std::runtime_error("cannot create the unassigned-memory page");
  }
  void* view = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, page.fd, 0);
  if (view == MAP_FAILED) throw std::runtime_error("cannot map the unassigned-memory page");
  page.view = static_cast<uint8_t*>(view);
  return page;
}

constexpr uint32_t kDr6SingleStep = 1u << 14;  // DR6.BS.

bool is_single(const TranslationUnit& u) {
  return TranslationMode::single_instruction_of_key(u.key.mode);
}

// A mov of a general register or an immediate to memory.
bool is_plain_mov_store(const DecodedInstruction& d, const ZydisDecodedOperand* op) {
  const ZydisDecodedOperand& source = d.operands[1];
  const bool plain_source =
      source.type == ZYDIS_OPERAND_TYPE_IMMEDIATE ||
      (source.type == ZYDIS_OPERAND_TYPE_REGISTER && !is_segment_register(source.reg.value));
  return d.mnemonic() == ZYDIS_MNEMONIC_MOV && op == &d.operands[0] && op->size / 8 <= 4 &&
         plain_source;
}

// The read-modify-write forms done in software as well: Linux
// changes live page-table entries with xchg (ptep_get_and_clear,
// ptep_clear_flush) and with a bit cleared or set by and/or, its LOCK
// patched to a DS prefix on one CPU (ptep_set_wrprotect at every fork).
// Running them singly with their page opened cost two protects and a 4 KiB
// compare each, about 13 us.
bool is_software_rmw_store(const DecodedInstruction& d, const ZydisDecodedOperand* op) {
  const ZydisMnemonic m = d.mnemonic();
  if (m != ZYDIS_MNEMONIC_XCHG && m != ZYDIS_MNEMONIC_AND && m != ZYDIS_MNEMONIC_OR &&
      m != ZYDIS_MNEMONIC_XOR) {
    return false;
  }
  const ZydisDecodedOperand& other = op == &d.operands[0] ? d.operands[1] : d.operands[0];
  const bool plain_other =
      other.type == ZYDIS_OPERAND_TYPE_REGISTER && !is_segment_register(other.reg.value);
  return op->size / 8 <= 4 &&
         (plain_other || (m != ZYDIS_MNEMONIC_XCHG && other.type == ZYDIS_OPERAND_TYPE_IMMEDIATE &&
                          op == &d.operands[0]));
}

// EFLAGS after and/or/xor: CF and OF clear, SF, ZF and PF from the result
// (AF is undefined and left alone).
uint32_t logical_flags(uint32_t eflags, uint32_t result, int size) {
  const uint32_t bits = static_cast<uint32_t>(size) * 8;
  const uint32_t value = bits == 32 ? result : result & ((1u << bits) - 1);
  eflags &= ~(eflags::kCf | eflags::kOf | eflags::kSf | eflags::kZf | eflags::kPf);
  if (value == 0) eflags |= eflags::kZf;
  if (value >> (bits - 1)) eflags |= eflags::kSf;
  if (std::popcount(value & 0xFF) % 2 == 0) eflags |= eflags::kPf;
  return eflags;
}

// The forms run_traced_store does itself through guest linear memory.
bool is_software_store(const DecodedInstruction& d, const ZydisDecodedOperand* op) {
  return is_plain_mov_store(d, op) || is_software_rmw_store(d, op);
}

bool is_flat(const Segment& s) {
  return s.base == 0 && s.limit == 0xFFFFFFFF;
}

VcpuExit error_exit(std::string message) {
  return {VcpuExit::Kind::kError, 0, std::move(message)};
}

}  // namespace

BtVcpu::BtVcpu(Machine& machine, const BtOptions& options)
    : machine_(machine),
      options_(options),
      unassigned_(make_unassigned_page()),
      mmu_(machine.memory(), ShadowMmu::Options{.unassigned_fd = unassigned_.fd}),
      linear_(machine.memory(), mmu_),
      cache_(options.translation_cache_bytes),
      translator_(cache_, TranslatorOptions{.adapted_stores = options.adapt ? &adapted_ : nullptr,
                                            .count_executed = options.count_executed}) {
  if (!host_has_fsgsbase()) {
    throw BackendUnavailable(
        "the bt backend needs user-space FSGSBASE (a CPU with fsgsbase and Linux 5.9 or later)");
  }
  void* ctx = mmap(nullptr, sizeof(VcpuContext), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (ctx == MAP_FAILED) throw std::runtime_error("cannot allocate the vCPU context");
  context_ = new (ctx) VcpuContext();
  lookup_ = &cache_.lookup_for_mode(mode_.key());
  context_->lookup_table = lookup_->address();
  kicker_ = std::make_unique<EventKicker>(context_->poll_page);
}

BtVcpu::~BtVcpu() {
  kicker_.reset();
  munmap(context_, sizeof(VcpuContext));
  munmap(unassigned_.view, 4096);
  close(unassigned_.fd);
}

CpuState BtVcpu::state() const {
  return cpu_;
}

void BtVcpu::set_state(const CpuState& state) {
  cpu_ = state;
  forget_descriptor_tables();
  view_dirty_ = true;
  paging_known_ = false;
  // New state may mean other page tables: no open guard was checked there.
  nonglobal_.close_all();
}

void BtVcpu::request_stop() {
  stop_requested_.store(true, std::memory_order_release);
  kicker_->kick();
  machine_.wake();
}

void BtVcpu::load_context() {
  for (int i = 0; i < 8; ++i) context_->gpr[i] = cpu_.gpr[i];
  context_->eip = cpu_.eip;
  context_->rflags = (cpu_.eflags & kHostGuestFlags) | 0x2;
  context_->virtual_eflags =
      (cpu_.eflags & ~static_cast<uint32_t>(kHostGuestFlags) & ~eflags::kIf) | eflags::kFixed1;
  context_->virtual_if = (cpu_.eflags & eflags::kIf) ? 1 : 0;
}

void BtVcpu::save_context() {
  for (int i = 0; i < 8; ++i) cpu_.gpr[i] = context_->gpr[i];
  cpu_.eip = context_->eip;
  cpu_.eflags = static_cast<uint32_t>(context_->rflags & kHostGuestFlags) |
                context_->virtual_eflags | (context_->virtual_if ? eflags::kIf : 0);
}

void BtVcpu::sync_selectors() {
  const uint8_t cpl = cpu_.cpl();
  for (int i = 0; i < kNumSegRegs; ++i) {
    const Segment& now = cpu_.seg[i];
    const SegmentReload& r = reloads_[i];
    context_->selectors[i] = now.selector;
    const bool no_op =
        r.valid && r.generation == descriptor_generation_ && r.cpl == cpl && r.loaded == now;
    context_->reload_selectors[i] = no_op ? now.selector : kNoReload;
  }
  prepare_segment_switches(cpl);
  const VerwMemo& v = verw_memo_;
  const bool verw_known = v.valid && v.generation == descriptor_generation_ && v.cpl == cpl;
  context_->verw_selector = verw_known ? v.selector : kNoReload;
}

// After a full mov into reg: a reload of the same selector at this CPL gives
// the same result as long as the descriptor stays as it is in memory (its
// accessed bit is set now), so the frame holding it is traced.
void BtVcpu::note_segment_load(SegReg reg) {
  SegmentReload& r = reloads_[static_cast<int>(reg)];
  const Segment& seg = cpu_.segment(reg);
  if (r.valid && (r.loaded.selector != seg.selector || r.cpl != cpu_.cpl())) {
    previous_loads_[static_cast<int>(reg)] = r;
  }
  r.valid = false;
  if (!seg.unusable && !trace_descriptor(seg.selector)) return;
  r = {seg, cpu_.cpl(), descriptor_generation_, true};
}

// For FS and GS: if the register held another selector at this CPL before
// its last full load, and that load would give the same descriptor now,
// translated code may switch back to it without a callout (Linux alternates
// the user's FS and its per-CPU FS on every kernel entry and exit, often
// with no exit in between). The prepared state is what refresh_view() would
// compute after that load; a switch exchanges it with the current state, so
// the offer is then to switch back.
void BtVcpu::prepare_segment_switches(uint8_t cpl) {
  for (int slot = 0; slot < 2; ++slot) {
    const SegReg reg = slot == 0 ? SegReg::kFs : SegReg::kGs;
    const SegmentReload& p = previous_loads_[static_cast<int>(reg)];
    VcpuContext::SegmentSwitch& out = context_->segment_switches[slot];
    // The register must be reloadable too: translated code offers the
    // switch back to it in exchange.
    if (view_dirty_ || !p.valid || p.generation != descriptor_generation_ || p.cpl != cpl ||
        p.loaded.selector == cpu_.segment(reg).selector ||
        context_->reload_selectors[static_cast<int>(reg)] != cpu_.segment(reg).selector) {
      out.selector = kNoReload;
      continue;
    }
    const Segment& fs = reg == SegReg::kFs ? p.loaded : cpu_.segment(SegReg::kFs);
    const Segment& gs = reg == SegReg::kGs ? p.loaded : cpu_.segment(SegReg::kGs);
    const SegmentView& view =
        switch_views_.get({fs, gs, cpl}, [&] { return view_fs_gs(fs, gs, cpl); });
    TranslationMode mode = mode_;
    view.apply_fs_gs_to(mode);
    out.selector = p.loaded.selector;
    out.fs_window_base = context_->window_base + view.fs_base;
    out.lookup_table = cache_.lookup_for_mode(mode.key(), code_segment()).address();
    view.copy_fs_gs_checks(out.fs_gs_checks);
  }
}

// Translated code switched FS or GS to the selector prepare_segment_switches()
// offered, and perhaps back and forth: each switch exchanges the two loads,
// so a register whose selector differs now holds the other one.
void BtVcpu::adopt_segment_switches() {
  context_->segments_switched = 0;
  for (SegReg reg : {SegReg::kFs, SegReg::kGs}) {
    const int i = static_cast<int>(reg);
    if (context_->selectors[i] == cpu_.seg[i].selector) continue;
    std::swap(reloads_[i], previous_loads_[i]);
    cpu_.seg[i] = reloads_[i].loaded;
  }
  refresh_view();
}

// After a verw that set ZF: the same selector gives ZF again at this CPL
// until its descriptor or the table registers change.
void BtVcpu::note_verw(const DecodedInstruction& d) {
  verw_memo_.valid = false;
  uint32_t selector = 0;
  if (!(cpu_.eflags & eflags::kZf)) return;
  if (!read_operand(*this, d, d.operands[0], 2, &selector).continues()) return;
  if (!trace_descriptor(static_cast<uint16_t>(selector))) return;
  verw_memo_ = {static_cast<uint16_t>(selector), cpu_.cpl(), descriptor_generation_, true};
}

// Traces the frame holding the descriptor selector names, so that a store to
// it advances descriptor_generation_. False if it cannot be traced (split
// across two pages, which is rare enough to stay a callout, or not in RAM).
bool BtVcpu::trace_descriptor(uint16_t selector) {
  const uint32_t table_base = (selector & 4) ? cpu_.ldtr.base : cpu_.gdtr.base;
  const uint32_t linear = table_base + (selector & 0xFFF8u);
  if ((linear & (kPage - 1)) > kPage - 8) return false;
  uint32_t physical = linear;
  if (const std::optional<PagingMode> mode = paging_mode_of(cpu_)) {
    const PageWalkResult w = mmu_.walker().probe(*mode, linear, {AccessType::kRead, false});
    if (!w.ok()) return false;
    physical = w.translation->physical;
  }
  const uint32_t frame = physical >> 12;
  if (!machine_.memory().contains(uint64_t{frame} << 12, kPage)) return false;
  if (descriptor_frames_.insert(frame).second) {
    mmu_.trace_frame(frame, TraceKind::kDescriptorTable);
  }
  return true;
}

void BtVcpu::forget_descriptor_tables() {
  ++descriptor_generation_;
  for (uint32_t frame : descriptor_frames_) mmu_.untrace_frame(frame, TraceKind::kDescriptorTable);
  descriptor_frames_.clear();
}

void BtVcpu::descriptor_tables_changed() {
  forget_descriptor_tables();
}

void BtVcpu::load_fpu() {
  cache_.stubs().use_fpu_image(*context_, cpu_.fpu.fxsave);
}

void BtVcpu::save_fpu() {
  std::memcpy(cpu_.fpu.fxsave.data(), context_->fpu, sizeof context_->fpu);
}

VcpuExit BtVcpu::run() {
  load_fpu();
  try {
    const VcpuExit exit = run_loop();
    save_fpu();
    return exit;
  } catch (const std::exception& e) {
    save_context();
    save_fpu();
    return error_exit(fmt::format("{} (guest EIP {:#010x})", e.what(), cpu_.eip));
  }
}

std::optional<VcpuExit> BtVcpu::exit_for_stop() {
  if (stop_requested_.exchange(false, std::memory_order_acq_rel)) {
    return VcpuExit{VcpuExit::Kind::kStopRequested, 0, "stop requested"};
  }
  const std::optional<StopRequest> stop = machine_.stop_request();
  if (!stop) return std::nullopt;
  switch (stop->kind) {
    case StopRequest::Kind::kDebugExit:
      return VcpuExit{VcpuExit::Kind::kDebugExit, stop->status,
                      "the guest wrote to the debug-exit port"};
    case StopRequest::Kind::kReset:
      return VcpuExit{VcpuExit::Kind::kReset, 0, "the guest reset the machine"};
    case StopRequest::Kind::kUserQuit:
      return VcpuExit{VcpuExit::Kind::kStopRequested, 0, "the user quit"};
    case StopRequest::Kind::kTimeout:
      return VcpuExit{VcpuExit::Kind::kStopRequested, 0, "the timeout expired"};
    case StopRequest::Kind::kSignal:
      return VcpuExit{VcpuExit::Kind::kStopRequested, stop->status,
                      fmt::format("stopped by signal {}", stop->status)};
  }
  return VcpuExit{VcpuExit::Kind::kStopRequested, 0, "stop requested"};
}

VcpuExit BtVcpu::run_loop() {
  HostSignalThread signals;
  signals.set_handler(this);
  const EventKicker::TimerScope timer(*kicker_);
  timed_events_due_ = true;
  load_context();
  const auto enter = cache_.stubs().enter_function();
  for (;;) {
    if (auto e = exit_for_stop()) {
      save_context();
      return *e;
    }
    if (timed_events_due_ || machine_.ports().accesses() != port_accesses_seen_) {
      const uint64_t now = machine_.clock().now_ns();
      std::optional<uint64_t> deadline = machine_.next_deadline_ns();
      if (deadline && *deadline <= now) {
        machine_.service_events();
        deadline = machine_.next_deadline_ns();
      }
      kicker_->set_deadline(deadline, now);
      timed_events_due_ = false;
      port_accesses_seen_ = machine_.ports().accesses();
    }
    if (cpu_.events.halted) {
      if (auto e = wait_while_halted()) {
        save_context();
        return *e;
      }
      // The wait moved the clock: the timer is armed again above.
      timed_events_due_ = true;
      continue;
    }
    if (!single_step_next_ && context_->virtual_if && machine_.interrupt_pending()) {
      save_context();
      const uint8_t vector = machine_.acknowledge_interrupt();
      ++counters_.interrupts_injected;
      if (auto e = deliver(GuestEvent::external_interrupt(vector))) return *e;
    }
    set_interrupt_window(machine_.interrupt_pending() && !context_->virtual_if);
    if (view_dirty_) refresh_view();

    // The common case after a callout or an exit: the next unit is in the
    // lookup table translated code itself uses, so skip the walk and the
    // unit index (the debugger needs the unit, so it takes the long way).
    // EFLAGS.TF: one instruction per unit, then #DB (a trap) unless the
    // instruction raised an exception or an event was delivered instead.
    const bool stepping = (context_->virtual_eflags & eflags::kTf) != 0;
    const bool single = single_step_next_ || stepping;
    uint64_t host = debug_hooks_ || single ? 0 : lookup_->find(context_->eip);
    if (host == 0) {
      if (debug_hooks_ && debug_hooks_->stop_before(context_->eip)) {
        save_context();
        return VcpuExit{VcpuExit::Kind::kStopRequested, 0, "the debugger stopped the guest"};
      }
      std::optional<VcpuExit> exit;
      TranslationUnit* unit = unit_for(context_->eip, single, &exit);
      if (exit) return *exit;
      if (unit == nullptr) continue;  // A fetch fault was delivered.
      if (debug_hooks_ && debug_hooks_->run_single(*unit) && !is_single(*unit)) {
        unit = unit_for(context_->eip, true, &exit);
        if (exit) return *exit;
        if (unit == nullptr) continue;
      }
      // Where a callout resumes is usually no branch target, so without
      // this every return from that callout would walk and search again.
      if (!is_single(*unit)) publish_in_lookup(context_->eip, *unit);
      single_step_next_ = false;
      host = unit->host_start;
    }
    ++counters_.dispatches;
    sync_selectors();
    step_retired_ = false;
    const uint64_t events_before = events_recorded_;
    enter(context_, host);
    if (auto e = handle_exit(context_->exit_id)) {
      save_context();
      return *e;
    }
    if (stepping && step_retired_ && events_recorded_ == events_before) {
      save_context();
      cpu_.dr[6] |= kDr6SingleStep;
      if (auto e = deliver(GuestEvent::exception({vector::kDb, std::nullopt, std::nullopt}))) {
        return *e;
      }
    }
  }
}

std::optional<VcpuExit> BtVcpu::wait_while_halted() {
  ++counters_.halts;
  const uint64_t start = now_ns();
  while (cpu_.events.halted) {
    if (auto e = exit_for_stop()) return e;
    if (!context_->virtual_if) {
      save_context();
      machine_.log().note("guest halted with interrupts disabled at EIP {:#x}: power off",
                          cpu_.eip);
      return VcpuExit{
          VcpuExit::Kind::kPowerOff, 0,
          fmt::format("the guest halted with interrupts disabled (EIP {:#010x})", cpu_.eip)};
    }
    if (machine_.interrupt_pending()) {
      cpu_.events.halted = false;
      break;
    }
    machine_.wait_for_event(machine_.next_deadline_ns());
    machine_.service_events();
  }
  counters_.halt_ns += now_ns() - start;
  return std::nullopt;
}

std::optional<VcpuExit> BtVcpu::deliver(const GuestEvent& event) {
  const uint64_t start = now_ns();
  DeliveredEvent& record = recent_events_[events_recorded_++ % recent_events_.size()];
  record = {event,
            cpu_.segment(SegReg::kCs).selector,
            cpu_.segment(SegReg::kSs).selector,
            0,
            cpu_.eip,
            cpu_.reg(Gpr::kEsp),
            cpu_.cr2,
            cpu_.cr3};
  const SystemOutcome outcome = deliver_event(*this, event);
  counters_.delivery_ns += now_ns() - start;
  if (event.source == EventSource::kException) ++counters_.exceptions_delivered;
  view_dirty_ = true;
  load_context();
  record.handler_cs = cpu_.segment(SegReg::kCs).selector;
  record.handler_eip = cpu_.eip;
  record.handler_esp = cpu_.reg(Gpr::kEsp);
  if (outcome.kind == SystemOutcome::Kind::kShutdown) {
    const uint64_t first =
        events_recorded_ - std::min<uint64_t>(events_recorded_, recent_events_.size());
    for (uint64_t i = first; i < events_recorded_; ++i) {
      machine_.log().note("bt: recent event {}",
                          describe_delivery(recent_events_[i % recent_events_.size()]));
    }
    return VcpuExit{VcpuExit::Kind::kTripleFault, 0,
                    fmt::format("{} (delivering {} at CS:EIP {:#x}:{:#010x}, {})", outcome.message,
                                describe_event(event.vector, event.error_code), record.cs,
                                record.eip, describe_instruction(record.eip))};
  }
  if (outcome.kind != SystemOutcome::Kind::kContinue) {
    return VcpuExit{VcpuExit::Kind::kTripleFault, 0,
                    fmt::format("event delivery of {} did not complete",
                                describe_event(event.vector, event.error_code))};
  }
  return std::nullopt;
}

// The instruction is decoded now, from what its page holds now.
std::string BtVcpu::describe_delivery(const DeliveredEvent& e) {
  return fmt::format(
      "{} ({}) at CS:EIP {:#x}:{:#010x} SS:ESP {:#x}:{:#010x} CR2 {:#010x} CR3 {:#010x}{} -> "
      "CS:EIP {:#x}:{:#010x} ESP {:#010x}",
      describe_event(e.event.vector, e.event.error_code), static_cast<int>(e.event.source), e.cs,
      e.eip, e.ss, e.esp, e.cr2, e.cr3,
      e.event.source == EventSource::kException ? ", " + describe_instruction(e.eip) : "",
      e.handler_cs, e.handler_eip, e.handler_esp);
}

// cpu_ holds the state after the instruction; the context is reloaded.
std::optional<VcpuExit> BtVcpu::finish_outcome(const SystemOutcome& outcome) {
  view_dirty_ = true;
  switch (outcome.kind) {
    case SystemOutcome::Kind::kContinue:
      break;
    case SystemOutcome::Kind::kException:
      return deliver(GuestEvent::exception(outcome.exception));
    case SystemOutcome::Kind::kHalt:
      cpu_.events.halted = true;
      break;
    case SystemOutcome::Kind::kShutdown:
      load_context();
      return VcpuExit{VcpuExit::Kind::kTripleFault, 0, outcome.message};
  }
  load_context();
  return std::nullopt;
}

// --- Address-space view -----------------------------------------------------

void BtVcpu::refresh_view() {
  view_dirty_ = false;
  const std::optional<PagingMode> mode = paging_mode_of(cpu_);
  const bool changed =
      !paging_known_ || mode.has_value() != paging_.has_value() ||
      (mode && (mode->cr3 >> 12 != paging_->cr3 >> 12 || global_meaning_differs(*mode, *paging_)));
  // Open entry guards need nothing here: every change of paging state went
  // through paging_changed() or set_state(), which checked or closed them.
  if (changed) {
    space_ = mode ? &mmu_.activate(*mode) : &mmu_.activate_identity();
    paging_ = mode;
    paging_known_ = true;
  }
  const uint8_t cpl = cpu_.cpl();
  window_ = (mode && cpl == 3) ? WindowKind::kUser : WindowKind::kSupervisor;
  const uint64_t base = reinterpret_cast<uint64_t>(space_->window(window_).base());
  context_->window_base = base;
  context_->negative_window_base = 0 - base;

  const SegmentView& view =
      views_.get({cpu_.seg, cpl}, [&] { return view_segments(cpu_.seg, cpl); });
  if (view.fs_base != logged_fs_base_) {
    logged_fs_base_ = view.fs_base;
    machine_.log().note("bt: {}S base {:#x} routed through host FS",
                        view.fs_segment == ZYDIS_REGISTER_FS ? 'F' : 'G', logged_fs_base_);
  }
  context_->fs_window_base = base + view.fs_base;
  std::copy(std::begin(view.checks), std::end(view.checks), std::begin(context_->segment_checks));

  const uint8_t iopl = (context_->virtual_eflags >> 12) & 3;
  mode_.cpl = cpl;
  mode_.if_sensitive = cpl > iopl;
  view.apply_to(mode_);
  mode_.single_instruction = false;
  mode_.timestamp_disabled = cpl > 0 && (cpu_.cr4 & cr4::kTsd) != 0;
  mode_.fpu = static_cast<uint8_t>(((cpu_.cr0 & cr0::kTs) ? fpu_mode::kTs : 0) |
                                   ((cpu_.cr0 & cr0::kEm) ? fpu_mode::kEm : 0) |
                                   ((cpu_.cr0 & cr0::kMp) ? fpu_mode::kMp : 0) |
                                   ((cpu_.cr4 & cr4::kOsfxsr) ? 0 : fpu_mode::kNoOsfxsr));
  lookup_ = &cache_.lookup_for_mode(mode_.key(), code_segment());
  context_->lookup_table = lookup_->address();
}

// The dispatcher's own test (unit_for), page by page, at the unit's
// privilege: its pages must map to the frames it was translated from.
bool BtVcpu::valid_in_current_space(const TranslationUnit& unit) {
  if (debug_hooks_ && !debug_hooks_->may_enter_directly(unit)) return false;
  const bool user = TranslationMode::cpl_of_key(unit.key.mode) == 3;
  for (const CodeRange& r : unit.code) {
    const PageWalkResult w =
        mmu_.walker().translate(*paging_, r.linear_page << 12, {AccessType::kExecute, user});
    if (!w.ok() || w.translation->physical >> 12 != r.physical >> 12) return false;
  }
  return true;
}

void BtVcpu::paging_changed() {
  mmu_.flush_table_writes();
  const std::optional<PagingMode> mode = paging_mode_of(cpu_);
  const bool same_kind = paging_known_ && mode.has_value() == paging_.has_value() &&
                         !(mode && global_meaning_differs(*mode, *paging_));
  if (!same_kind) cache_.unlink_all();
  // Every CR3 write flushes the non-global TLB, even of the same value:
  // that is how a guest publishes a page-table store the shadow MMU did not
  // trace (a table no shadow mapping was derived from). So the open guards
  // are checked against the tables as they are now, as a TLB refilled right
  // after the flush would be.
  if (mode && same_kind) {
    nonglobal_.revalidate(
        [&](uint32_t linear_page, bool user) { return fetchable_page(*mode, linear_page, user); });
  } else {
    nonglobal_.close_all();
  }
  view_dirty_ = true;
}

// A fetch that would set no accessed bit, so that keeping a guard open
// across the flush changes nothing the guest can see.
NonGlobalUnits::PageNow BtVcpu::fetchable_page(const PagingMode& mode, uint32_t linear_page,
                                               bool user) {
  const PageWalkResult r =
      mmu_.walker().probe(mode, linear_page << 12, {AccessType::kExecute, user});
  if (!r.ok() || !r.translation->accessed) return {};
  return {r.translation->physical >> 12, r.translation->global};
}

void BtVcpu::invalidate_page(uint32_t linear) {
  if (paging_ && space_ != nullptr) mmu_.invalidate_page(*space_, linear);
  for (TranslationUnit* u : cache_.units_on_linear_page(linear >> 12)) cache_.detach(*u);
  nonglobal_.close_page(linear >> 12);
}

// Stores done by the runtime (callouts, system instructions, adapted
// stores) take no trace fault, so the debugger hears of them here.
void BtVcpu::traced_memory_written(uint32_t linear, uint32_t length, TraceKinds kinds) {
  traced_store_hit_ = true;
  if (has_kind(kinds, TraceKind::kDescriptorTable)) ++descriptor_generation_;
  const bool watched = debug_hooks_ && has_kind(kinds, TraceKind::kWatch);
  if (!has_kind(kinds, TraceKind::kCode) && !watched) return;
  const std::optional<PagingMode> mode = paging_mode_of(cpu_);
  uint32_t done = 0;
  while (done < length) {
    const uint32_t at = linear + done;
    const uint32_t piece = std::min(length - done, kPage - (at & (kPage - 1)));
    uint32_t physical = at;
    if (mode) {
      // The walk is made after the store, so a store that remapped its own
      // page (a self-mapping table) walks to the new frame. Left open: such
      // a store to a page that also holds code or a watchpoint is reported
      // for the new frame, not the one written.
      const PageWalkResult r = mmu_.walker().probe(*mode, at, {AccessType::kRead, false});
      if (!r.ok()) break;
      physical = r.translation->physical;
    }
    if (watched) debug_hooks_->traced_write(physical, piece, kinds);
    if (has_kind(kinds, TraceKind::kCode)) invalidate_physical(physical, piece);
    done += piece;
  }
}

uint64_t BtVcpu::read_tsc() {
  return __rdtsc();
}

void BtVcpu::write_tsc(uint64_t value) {
  // rdtsc runs IDENT on the host's counter, so it cannot be offset.
  machine_.log().note("guest wrote {:#x} to the TSC; the bt backend keeps the host's", value);
}

// --- Finding units ----------------------------------------------------------

CodeSegment BtVcpu::code_segment() const {
  return code_segment_of(cpu_.segment(SegReg::kCs));
}

TranslationMode BtVcpu::current_mode(bool single) const {
  TranslationMode m = mode_;
  m.single_instruction = single;
  return m;
}

std::optional<uint32_t> BtVcpu::code_frame(uint32_t linear, uint32_t* error_code) {
  *error_code = 0;
  uint32_t physical = linear;
  if (paging_) {
    const PageWalkResult r =
        mmu_.walker().translate(*paging_, linear, {AccessType::kExecute, mode_.cpl == 3});
    if (!r.ok()) {
      *error_code = r.error_code;
      return std::nullopt;
    }
    physical = r.translation->physical;
  }
  if (!machine_.memory().contains(physical & ~(kPage - 1), kPage)) {
    throw std::runtime_error(fmt::format(
        "the guest executes at {:#x}, physical {:#x}, which is not RAM", linear, physical));
  }
  return physical >> 12;
}

TranslationUnit* BtVcpu::unit_for(uint32_t eip, bool single, std::optional<VcpuExit>* exit) {
  const CodeSegment cs = code_segment();
  // Past the limit there is nothing to fetch or to walk to (#GP comes
  // before any #PF); the translator raises it for instructions that start
  // within the limit and reach past it.
  if (eip > cs.limit) {
    save_context();
    *exit = deliver(GuestEvent::exception(GuestException{vector::kGp, 0, std::nullopt}));
    return nullptr;
  }
  const uint32_t linear = cs.base + eip;
  uint32_t error_code = 0;
  const std::optional<uint32_t> frame = code_frame(linear, &error_code);
  if (!frame) {
    save_context();
    GuestException pf{vector::kPf, error_code, linear};
    *exit = deliver(GuestEvent::exception(pf));
    return nullptr;
  }
  const TranslationMode mode = current_mode(single);
  const UnitKey key{eip, *frame, mode.key(), cs};
  ++counters_.lookups;
  if (TranslationUnit* u = cache_.find(eip, *frame, mode, cs)) {
    bool valid = true;
    for (size_t i = 1; i < u->code.size() && valid; ++i) {
      uint32_t ignored;
      const std::optional<uint32_t> f = code_frame(u->code[i].linear_page << 12, &ignored);
      valid = f && *f == u->code[i].physical >> 12;
    }
    if (valid) {
      ++counters_.lookup_hits;
      return u;
    }
    cache_.retire(*u);
  }
  fetch_base_ = cs.base;
  fetch_page_ = linear >> 12;
  fetch_frame_ = frame;
  const uint64_t start = now_ns();
  TranslationUnit& u = translator_.translate(key, mode, *this);
  fetch_frame_.reset();
  note_code(u);
  if (adaptations_awaiting_unit_ != 0) note_adapted_translation(u);
  counters_.translate_ns += now_ns() - start;
  return &u;
}

void BtVcpu::note_code(TranslationUnit& unit) {
  const uint32_t start = unit.key.code_segment.base + unit.guest_start;
  const uint64_t page_end = (uint64_t{start} | (kPage - 1)) + 1;
  const uint64_t end = uint64_t{start} + std::max<uint32_t>(unit.guest_end - unit.guest_start, 1);
  unit.global = true;
  unit.code.clear();
  for (uint64_t at = start; at < end;) {
    const uint64_t piece_end = std::min<uint64_t>(end, (at | (kPage - 1)) + 1);
    uint32_t physical = static_cast<uint32_t>(at);
    if (paging_) {
      const PageWalkResult r = mmu_.walker().probe(*paging_, static_cast<uint32_t>(at),
                                                   {AccessType::kExecute, mode_.cpl == 3});
      if (!r.ok()) break;  // The unit ends in a fetch fault there.
      physical = r.translation->physical;
      unit.global = unit.global && r.translation->global;
    }
    unit.code.push_back(
        {static_cast<uint32_t>(at) >> 12, physical, static_cast<uint32_t>(piece_end - at)});
    at = piece_end;
    if (at > page_end) break;
  }
  cache_.index_code(unit);
  for (const CodeRange& r : unit.code) mmu_.trace_frame(r.physical >> 12, TraceKind::kCode);
}

bool BtVcpu::may_link(const TranslationUnit& from, const TranslationUnit& to) const {
  if (!from.live || !to.live || is_single(from) || is_single(to)) return false;
  if (!TranslationMode::link_keeps_mode(from.key.mode, to.key.mode)) return false;
  if (debug_hooks_ && !debug_hooks_->may_enter_directly(to)) return false;
  return true;
}

// A target in the source's own pages needs no entry in the index: the
// source being entered at all means those pages still map where they did.
bool BtVcpu::within_pages_of(const TranslationUnit& from, const TranslationUnit& to) {
  for (const CodeRange& r : to.code) {
    const bool inside = std::any_of(from.code.begin(), from.code.end(), [&](const CodeRange& q) {
      return q.linear_page == r.linear_page && q.physical >> 12 == r.physical >> 12;
    });
    if (!inside) return false;
  }
  return true;
}

size_t BtVcpu::fetch(uint32_t eip, std::span<uint8_t> buffer, uint32_t* fault_error_code) {
  *fault_error_code = 0;
  const uint32_t linear = fetch_base_ + eip;
  // A unit spans at most its first page and the tail of an instruction
  // that crosses into the next one.
  if (linear >> 12 != fetch_page_) return 0;
  size_t n = 0;
  while (n < buffer.size()) {
    const uint32_t at = linear + static_cast<uint32_t>(n);
    uint32_t physical = at;
    if (fetch_frame_ && at >> 12 == fetch_page_) {
      physical = (*fetch_frame_ << 12) | (at & (kPage - 1));
    } else if (paging_) {
      const PageWalkResult r =
          mmu_.walker().translate(*paging_, at, {AccessType::kExecute, mode_.cpl == 3});
      if (!r.ok()) {
        *fault_error_code = r.error_code;
        break;
      }
      physical = r.translation->physical;
    }
    const uint32_t in_page =
        std::min<uint32_t>(static_cast<uint32_t>(buffer.size() - n), kPage - (at & (kPage - 1)));
    if (!machine_.memory().contains(physical, in_page)) break;
    machine_.memory().read(physical, buffer.subspan(n, in_page));
    n += in_page;
  }
  return n;
}

std::string BtVcpu::describe_instruction(uint32_t eip) {
  DecodedInstruction d;
  if (!decode_at(eip, &d)) return fmt::format("undecodable bytes at {:#010x}", eip);
  char text[96];
  ZydisFormatter formatter;
  ZydisFormatterInit(&formatter, ZYDIS_FORMATTER_STYLE_INTEL);
  ZydisFormatterFormatInstruction(&formatter, &d.insn, d.operands.data(), d.insn.operand_count,
                                  text, sizeof text, eip, nullptr);
  std::string bytes;
  for (int i = 0; i < d.insn.length; ++i) bytes += fmt::format(" {:02x}", d.bytes[i]);
  return fmt::format("{:#010x}: {} ({} )", eip, text, bytes);
}

bool BtVcpu::decode_at(uint32_t eip, DecodedInstruction* d) {
  const CodeSegment cs = code_segment();
  if (eip > cs.limit) return false;
  uint8_t bytes[15];
  uint32_t ignored;
  const uint32_t saved_base = fetch_base_;
  const uint32_t saved_page = fetch_page_;
  const std::optional<uint32_t> saved_frame = fetch_frame_;
  fetch_base_ = cs.base;
  fetch_page_ = (cs.base + eip) >> 12;
  fetch_frame_.reset();
  const size_t n =
      fetch(eip, {bytes, static_cast<size_t>(std::min<uint64_t>(15, uint64_t{cs.limit} - eip + 1))},
            &ignored);
  fetch_base_ = saved_base;
  fetch_page_ = saved_page;
  fetch_frame_ = saved_frame;
  return GuestDecoder().decode(eip, {bytes, n}, d, cs.code_16) == DecodeStatus::kOk;
}

// --- Exits ------------------------------------------------------------------

// Makes unit the one translated code's lookup (and the dispatcher's fast
// path) enters at eip in the current mode.
void BtVcpu::publish_in_lookup(uint32_t eip, TranslationUnit& unit) {
  if (debug_hooks_ && !debug_hooks_->may_enter_directly(unit)) return;
  if (unit.global) {
    lookup_->insert(eip, unit.host_start);
    return;
  }
  if (nonglobal_.open(unit)) lookup_->insert(eip, unit.guarded_entry);
}

std::optional<VcpuExit> BtVcpu::handle_exit(uint32_t exit_id) {
  if (context_->segments_switched) adopt_segment_switches();
  if (exit_id == kExitHostFault) return handle_host_fault();
  if (exit_id == kExitIndirectMiss) {
    ++counters_.indirect_misses;
    step_retired_ = true;
    const uint32_t target = context_->eip;
    if (view_dirty_) refresh_view();
    std::optional<VcpuExit> exit;
    TranslationUnit* unit = unit_for(target, false, &exit);
    if (unit != nullptr) publish_in_lookup(target, *unit);
    return exit;
  }
  const ExitRecord exit = cache_.exit(exit_id);
  switch (exit.kind) {
    case ExitKind::kDirect: {
      const uint64_t flushes = cache_.flush_count();
      if (is_single(cache_.unit(exit.unit))) {
        step_retired_ = true;
        return std::nullopt;
      }
      std::optional<VcpuExit> e;
      TranslationUnit* target = unit_for(exit.guest_target, false, &e);
      if (target == nullptr || cache_.flush_count() != flushes) return e;
      TranslationUnit& from = cache_.unit(exit.unit);
      if (may_link(from, *target)) {
        const bool guarded = !target->global && !within_pages_of(from, *target);
        if (guarded && !nonglobal_.open(*target)) return std::nullopt;
        cache_.link(exit_id, *target, guarded);
        ++counters_.chained_jumps;
      }
      return std::nullopt;
    }
    case ExitKind::kException: {
      save_context();
      cpu_.eip = exit.guest_target;
      if (exit.fault_address) cache_.retire(cache_.unit(exit.unit));
      if (exit.vector == vector::kBp) {
        cpu_.eip = exit.guest_target - 1;
        return deliver(GuestEvent::software(vector::kBp, EventSource::kSoftwareException, 1));
      }
      GuestException e{exit.vector, exit.error_code, exit.fault_address};
      return deliver(GuestEvent::exception(e));
    }
    case ExitKind::kCallout:
      return handle_callout(exit_id, exit);
    case ExitKind::kGuard: {
      // A link or lookup entry reached a unit whose guard the last TLB
      // flush closed. The dispatcher then enters whatever unit is right
      // at its EIP in this space.
      ++counters_.closed_guards_hit;
      if (view_dirty_) refresh_view();
      TranslationUnit& unit = cache_.unit(exit.unit);
      if (!unit.live) return std::nullopt;
      // The ways in lead elsewhere in this space (or cannot be guarded):
      // they relink on use.
      if (!paging_ || !valid_in_current_space(unit) || !nonglobal_.open(unit)) {
        cache_.detach(unit);
      }
      return std::nullopt;
    }
  }
  return std::nullopt;
}

std::optional<VcpuExit> BtVcpu::handle_host_fault() {
  const HostFault fault = fault_;
  switch (fault.kind) {
    case HostFault::Kind::kNone:
      return error_exit("a host fault left the cache without a report");
    case HostFault::Kind::kPoll:
      ++counters_.poll_exits;
      kicker_->rearm();
      cache_.restore_loops();
      timed_events_due_ = true;
      return std::nullopt;
    case HostFault::Kind::kInterruptWindow:
      // sti or popf opened the window and is complete. After sti one more
      // instruction runs before the interrupt (its shadow); after popf the
      // interrupt comes at once.
      if (fault.interrupt_shadow) single_step_next_ = true;
      step_retired_ = true;
      return std::nullopt;
    case HostFault::Kind::kException:
      save_context();
      if (fault.exception.vector == vector::kPf) {
        ++counters_.guest_page_faults;
        if (machine_.log().enabled() && paging_ && fault.exception.fault_address) {
          const uint32_t cr2 = *fault.exception.fault_address;
          const uint32_t pde_address = (paging_->cr3 & ~0xFFFu) + (cr2 >> 22) * 4;
          const uint32_t pde = machine_.memory().read_u32(pde_address);
          uint32_t pte = 0;
          if ((pde & 1) && !(pde & 0x80)) {
            pte = machine_.memory().read_u32((pde & ~0xFFFu) + ((cr2 >> 12) & 0x3FF) * 4);
          }
          machine_.log().note(
              "bt: #PF({:#x}) at {:#x}: cr3 {:#x} pde@{:#x} = {:#x} pte = {:#x} by {}",
              *fault.exception.error_code, cr2, paging_->cr3, pde_address, pde, pte,
              describe_instruction(cpu_.eip));
        }
      }
      return deliver(GuestEvent::exception(fault.exception));
    case HostFault::Kind::kTraceWrite:
      for (int bit = 0; bit < 3; ++bit) {
        if (fault.exception.vector & (1 << bit)) ++counters_.trace_faults[bit];
      }
      if (debug_hooks_) debug_hooks_->trace_fault(fault.physical, fault.exception.vector);
      count_trace_fault(context_->eip, fault.exception.vector);
      return store_to_traced_page(fault.linear, fault.physical);
    case HostFault::Kind::kNotRam:
      if (fault.write) return emulate_traced_store(fault.linear, fault.physical);
      machine_.log().note(
          "non-RAM access by {}; FS {:#x} base {:#x}, GS {:#x} base {:#x}, CR0 {:#x}",
          describe_instruction(context_->eip), cpu_.segment(SegReg::kFs).selector,
          cpu_.segment(SegReg::kFs).base, cpu_.segment(SegReg::kGs).selector,
          cpu_.segment(SegReg::kGs).base, cpu_.cr0);
      return error_exit(fmt::format(
          "the guest accessed physical address {:#x} (linear {:#x}), which is not RAM: memory-"
          "mapped devices are not supported by the bt backend (EIP {:#010x}, paging {})",
          fault.physical, fault.linear, context_->eip, paging_ ? "on" : "off"));
    case HostFault::Kind::kError:
      return error_exit(fault.error);
  }
  return std::nullopt;
}

BtVcpu::CalloutSite* BtVcpu::callout_site(uint32_t exit_id, const ExitRecord& exit) {
  if (callout_sites_flush_count_ != cache_.flush_count()) {
    callout_sites_.clear();
    callout_sites_flush_count_ = cache_.flush_count();
  }
  if (auto it = callout_sites_.find(exit_id); it != callout_sites_.end()) return &it->second;
  CalloutSite site;
  if (!decode_at(exit.guest_target, &site.instruction)) return nullptr;
  const DecodedInstruction& d = site.instruction;
  const std::string name = exit.callout == CalloutId::kSystem || exit.callout == CalloutId::kHalt ||
                                   exit.callout == CalloutId::kCpuid ||
                                   exit.callout == CalloutId::kSoftwareInterrupt ||
                                   exit.callout == CalloutId::kInto
                               ? ZydisMnemonicGetString(d.mnemonic())
                               : callout_spec(exit.callout).name;
  site.count = &counters_.callouts[name];
  site.ns = &counters_.callout_ns[name];
  site.view_neutral = is_view_neutral(d);
  const ZydisDecodedOperand& dst = d.operands[0];
  if ((d.mnemonic() == ZYDIS_MNEMONIC_MOV || d.mnemonic() == ZYDIS_MNEMONIC_POP) &&
      dst.type == ZYDIS_OPERAND_TYPE_REGISTER && is_segment_register(dst.reg.value)) {
    const SegReg reg = segment_of(dst.reg.value);
    if (reg != SegReg::kSs && reg != SegReg::kCs) site.loads_segment = reg;
  }
  // Translated iretd goes on without a callout once reloading this CS is
  // known to change nothing.
  if (d.mnemonic() == ZYDIS_MNEMONIC_IRETD) site.loads_segment = SegReg::kCs;
  return &callout_sites_.emplace(exit_id, site).first->second;
}

// Instructions after which the dispatcher need not recompute the window,
// segment routing and translation mode: they change none of CPL, segment
// registers, control registers, IOPL or EFLAGS.IF.
bool BtVcpu::is_view_neutral(const DecodedInstruction& d) {
  switch (d.mnemonic()) {
    case ZYDIS_MNEMONIC_IN:
    case ZYDIS_MNEMONIC_OUT:
    case ZYDIS_MNEMONIC_INSB:
    case ZYDIS_MNEMONIC_INSW:
    case ZYDIS_MNEMONIC_INSD:
    case ZYDIS_MNEMONIC_OUTSB:
    case ZYDIS_MNEMONIC_OUTSW:
    case ZYDIS_MNEMONIC_OUTSD:
    case ZYDIS_MNEMONIC_CPUID:
    case ZYDIS_MNEMONIC_RDMSR:
    case ZYDIS_MNEMONIC_VERR:
    case ZYDIS_MNEMONIC_VERW:
    case ZYDIS_MNEMONIC_LAR:
    case ZYDIS_MNEMONIC_LSL:
    case ZYDIS_MNEMONIC_SGDT:
    case ZYDIS_MNEMONIC_SIDT:
    case ZYDIS_MNEMONIC_SLDT:
    case ZYDIS_MNEMONIC_STR:
    case ZYDIS_MNEMONIC_SMSW:
    case ZYDIS_MNEMONIC_WBINVD:
    case ZYDIS_MNEMONIC_INVD:
    case ZYDIS_MNEMONIC_INVLPG:  // Drops mappings and closes guards; the view stays.
      return true;
    case ZYDIS_MNEMONIC_MOV:
      // Reading a segment, control or debug register; writes change the view.
      return d.operands[0].type == ZYDIS_OPERAND_TYPE_REGISTER &&
             ZydisRegisterGetClass(d.operands[0].reg.value) == ZYDIS_REGCLASS_GPR32;
    default:
      return false;
  }
}

std::optional<VcpuExit> BtVcpu::handle_callout(uint32_t exit_id, const ExitRecord& exit) {
  save_context();
  cpu_.eip = exit.guest_target;
  CalloutSite* site = callout_site(exit_id, exit);
  if (site == nullptr) {
    // The bytes cannot be fetched or decoded any more: retranslate from here.
    return std::nullopt;
  }
  const DecodedInstruction& d = site->instruction;
  ++*site->count;
  // Done, unless it raises an exception (run_loop sees the delivery).
  step_retired_ = true;
  const uint64_t start = options_.count_executed ? now_ns() : 0;
  std::optional<VcpuExit> result;
  if (exit.callout == CalloutId::kTracedStore) {
    const uint32_t eip = cpu_.eip;
    traced_store_hit_ = false;
    result = run_traced_store(d);
    note_adapted_store_run(eip, traced_store_hit_);
  } else if (is_system_instruction(d)) {
    const SystemOutcome outcome = execute_system_instruction(*this, d);
    if (outcome.kind == SystemOutcome::Kind::kContinue) {
      if (site->loads_segment) note_segment_load(*site->loads_segment);
      if (d.mnemonic() == ZYDIS_MNEMONIC_VERW) note_verw(d);
    }
    // A neutral instruction that completed leaves the view as it was (an
    // exception delivered on its behalf changes it).
    const bool keep_view =
        site->view_neutral && outcome.kind == SystemOutcome::Kind::kContinue && !view_dirty_;
    result = finish_outcome(outcome);
    if (keep_view) view_dirty_ = false;
  } else if (exit.callout == CalloutId::kSystem) {
    result = deliver(GuestEvent::exception({vector::kUd, std::nullopt, std::nullopt}));
  } else {
    CalloutEnvironment env{cpu_, *this, d};
    const CalloutResult r = callout_spec(exit.callout).function(env);
    switch (r.action) {
      case CalloutResult::Action::kContinue:
        load_context();
        break;
      case CalloutResult::Action::kHalt:
        cpu_.eip = d.next_eip();
        cpu_.events.halted = true;
        load_context();
        break;
      case CalloutResult::Action::kException:
        result = deliver(GuestEvent::exception(r.exception));
        break;
    }
  }
  if (options_.count_executed) *site->ns += now_ns() - start;
  return result;
}

void BtVcpu::set_interrupt_window(bool armed) {
  if (armed == interrupt_window_armed_) return;
  mprotect(context_->interrupt_window_page, kPage, armed ? PROT_NONE : PROT_READ | PROT_WRITE);
  interrupt_window_armed_ = armed;
  context_->interrupt_window_armed = armed ? 1 : 0;
}

// --- Host faults (signal context) ------------------------------------------

bool BtVcpu::handle_host_signal(HostSignal& signal) {
  if (signal.signo == kick_signal()) {
    kicker_->on_kick_signal();
    cache_.break_loop_at(static_cast<uint64_t>(signal.context->uc_mcontext.gregs[REG_RIP]));
    return true;
  }
  RecoveredGuestState guest;
  if (!recover_signal_state(cache_, signal, context_->window_base, &guest)) return false;
  greg_t* g = signal.context->uc_mcontext.gregs;
  fault_ = {};
  const uint64_t address = reinterpret_cast<uint64_t>(signal.info->si_addr);
  const uint64_t poll = reinterpret_cast<uint64_t>(context_->poll_page);
  const uint64_t window = reinterpret_cast<uint64_t>(context_->interrupt_window_page);
  const uint64_t base = context_->window_base;
  switch (signal.signo) {
    case SIGSEGV:
      if (address - poll < kPage) {
        fault_.kind = HostFault::Kind::kPoll;
      } else if (address - window < kPage) {
        fault_.kind = HostFault::Kind::kInterruptWindow;
        fault_.interrupt_shadow = address - window < ctx_offset::kInterruptWindowNoShadow;
      } else if (signal.info->si_code != SI_KERNEL && space_ != nullptr &&
                 address - base < HostWindow::kReservation) {
        const uint32_t linear = static_cast<uint32_t>(address - base);
        const bool write = (g[REG_ERR] & 2) != 0;
        const uint64_t start = now_ns();
        HiddenFaultResult r;
        try {
          r = mmu_.resolve_fault(*space_, window_, linear, write);
        } catch (const std::exception&) {
          fault_.kind = HostFault::Kind::kError;
          fault_.error = "the shadow MMU could not map a guest page (host mmap failed)";
          break;
        }
        // Touched through the mirror (an FS-relative access that wrapped):
        // the page just resolved, or the traced page now to be emulated,
        // must be there too.
        if (address - base >= HostWindow::kSpan) space_->window(window_).mirror(linear >> 12);
        counters_.hidden_fault_ns += now_ns() - start;
        switch (r.kind) {
          case HiddenFaultResult::Kind::kMapped:
            ++counters_.hidden_page_faults;
            // A kick that arrived during this handler found no translated
            // code to break; the loop resumed here must meet its poll.
            if (kicker_->kicked()) cache_.break_loop_at(static_cast<uint64_t>(g[REG_RIP]));
            return true;  // Resume the same host instruction.
          case HiddenFaultResult::Kind::kGuestPageFault:
            fault_.kind = HostFault::Kind::kException;
            fault_.exception = {vector::kPf, r.error_code, linear};
            break;
          case HiddenFaultResult::Kind::kTraceWrite:
            fault_.kind = HostFault::Kind::kTraceWrite;
            fault_.linear = linear;
            fault_.physical = r.physical;
            fault_.exception.vector = r.trace_kinds;  // The kinds, for counting.
            break;
          case HiddenFaultResult::Kind::kNotRam:
            fault_.kind = HostFault::Kind::kNotRam;
            fault_.linear = linear;
            fault_.physical = r.physical;
            fault_.write = write;
            break;
        }
      } else {
        fault_.kind = HostFault::Kind::kException;
        fault_.exception = {vector::kGp, 0u, std::nullopt};
      }
      break;
    case SIGFPE:
      fault_.kind = HostFault::Kind::kException;
      fault_.exception.vector = g[REG_TRAPNO] == 16   ? vector::kMf
                                : g[REG_TRAPNO] == 19 ? vector::kXm
                                                      : vector::kDe;
      break;
    case SIGILL:
      fault_.kind = HostFault::Kind::kException;
      fault_.exception.vector = vector::kUd;
      break;
    case SIGTRAP:
      fault_.kind = HostFault::Kind::kException;
      fault_.exception.vector = vector::kDb;
      break;
    default:
      fault_.kind = HostFault::Kind::kException;
      fault_.exception = {vector::kGp, 0u, std::nullopt};
      break;
  }
  leave_through_fault_exit(cache_, *context_, signal, guest);
  return true;
}

// --- Stores to traced pages -------------------------------------------------

// Adaptation: past the threshold, the units holding the instruction are
// retired (every way into them is unlinked, so the next arrival goes through
// the dispatcher) and it is retranslated as a kTracedStore callout.
void BtVcpu::count_trace_fault(uint32_t eip, TraceKinds kinds) {
  if (!options_.adapt || adapted_.contains(eip)) return;
  const auto runs = adapted_runs_.find(eip);
  const uint32_t reverts = runs == adapted_runs_.end() ? 0 : std::min(runs->second.reverts, 16u);
  if (++trace_fault_counts_[eip] < options_.adapt_threshold << reverts) return;
  DecodedInstruction d;
  if (!decode_at(eip, &d)) return;
  const ZydisDecodedOperand* op = explicit_store_operand(d);
  if (op == nullptr) return;
  adapted_.insert(eip);
  ++counters_.adaptations;
  BtAdaptation a{.eip = eip,
                 .bytes = {d.bytes.begin(), d.bytes.begin() + d.insn.length},
                 .trace_faults = trace_fault_counts_[eip],
                 .kinds = kinds,
                 .software_store = is_software_store(d, op),
                 .old_units = {},
                 .new_unit = std::nullopt,
                 .reverted = std::nullopt};
  retire_units_holding(eip, &a.old_units);
  machine_.log().note("bt: adapted the store at {} after {} trace faults",
                      describe_instruction(eip), a.trace_faults);
  adaptations_.push_back(std::move(a));
  ++adaptations_awaiting_unit_;
}

void BtVcpu::retire_units_holding(uint32_t eip, std::vector<uint32_t>* ids) {
  const std::span<TranslationUnit* const> on_page = cache_.units_on_linear_page(eip >> 12);
  const std::vector<TranslationUnit*> units(on_page.begin(), on_page.end());
  for (TranslationUnit* u : units) {
    if (u->guest_start <= eip && eip < u->guest_end) {
      if (ids) ids->push_back(u->id);
      cache_.retire(*u);
    }
  }
  if (ids) std::sort(ids->begin(), ids->end());
}

// Judged over windows of callouts: a store that hit a traced page in fewer
// than 1 of 64 runs pays a callout for nothing (Linux's mmu_gather batch
// pages, once page tables, are written on every exit); a plain store costs
// one trace fault per hit instead.
void BtVcpu::note_adapted_store_run(uint32_t eip, bool hit) {
  constexpr uint32_t kWindow = 4096;
  AdaptedStoreRuns& r = adapted_runs_[eip];
  r.hits += hit;
  if (++r.runs < kWindow) return;
  if (r.hits * 64 < r.runs) {
    adapted_.erase(eip);
    trace_fault_counts_.erase(eip);
    ++r.reverts;
    ++counters_.adaptations_reverted;
    retire_units_holding(eip, nullptr);
    for (auto it = adaptations_.rbegin(); it != adaptations_.rend(); ++it) {
      if (it->eip != eip) continue;
      it->reverted = {r.runs, r.hits};
      break;
    }
    machine_.log().note("bt: reverted the adapted store at {}: {} of {} callouts hit a traced page",
                        describe_instruction(eip), r.hits, r.runs);
  }
  r.runs = 0;
  r.hits = 0;
}

// Fills in the new unit of the adaptations a fresh translation covers.
void BtVcpu::note_adapted_translation(const TranslationUnit& unit) {
  const uint32_t end = std::max(unit.guest_end, unit.guest_start + 1);
  for (auto it = adaptations_.rbegin(); it != adaptations_.rend() && adaptations_awaiting_unit_;
       ++it) {
    // A single-instruction unit only runs it once; the adapted unit is
    // the one the dispatcher enters from now on.
    if (it->new_unit || is_single(unit) || it->eip < unit.guest_start || it->eip >= end) continue;
    it->new_unit = unit.id;
    --adaptations_awaiting_unit_;
  }
}

// An adapted store, with cpu_ current at the instruction: a plain mov is
// done here through guest linear memory (which does the tracing work);
// any other form runs as a single instruction with its page opened if it
// is traced, as after a trace fault but without taking one.
std::optional<VcpuExit> BtVcpu::run_traced_store(const DecodedInstruction& d) {
  const ZydisDecodedOperand* op = explicit_store_operand(d);
  if (is_software_store(d, op)) return run_software_store(d, op);
  const Segment& segment = cpu_.segment(segment_of(op->mem.segment));
  const uint32_t linear = effective_address(cpu_, d, *op) + segment.base;
  load_context();
  std::optional<uint32_t> physical;
  if (paging_) {
    const PageWalkResult r =
        mmu_.walker().probe(*paging_, linear, {AccessType::kWrite, mode_.cpl == 3});
    if (r.ok()) physical = r.translation->physical;
  } else if (machine_.memory().contains(linear, 1)) {
    physical = linear;
  }
  if (physical && mmu_.trace_kinds(*physical >> 12) != 0) {
    traced_store_hit_ = true;
    return emulate_traced_store(linear, *physical);
  }
  // Not traced now: the instruction runs on its own and faults as it must.
  std::optional<VcpuExit> exit;
  TranslationUnit* unit = unit_for(context_->eip, true, &exit);
  if (unit == nullptr) return exit;
  cache_.stubs().enter_function()(context_, unit->host_start);
  return handle_exit(context_->exit_id);
}

std::optional<VcpuExit> BtVcpu::run_software_store(const DecodedInstruction& d,
                                                   const ZydisDecodedOperand* op) {
  const int size = op->size / 8;
  const ZydisDecodedOperand& other = op == &d.operands[0] ? d.operands[1] : d.operands[0];
  const ZydisMnemonic m = d.mnemonic();
  uint32_t operand = 0;
  uint32_t old_value = 0;
  SystemOutcome o = read_operand(*this, d, other, size, &operand);
  if (o.continues() && m != ZYDIS_MNEMONIC_MOV) o = read_operand(*this, d, *op, size, &old_value);
  if (!o.continues()) return finish_outcome(o);
  uint32_t result = operand;
  if (m == ZYDIS_MNEMONIC_AND) result = old_value & operand;
  if (m == ZYDIS_MNEMONIC_OR) result = old_value | operand;
  if (m == ZYDIS_MNEMONIC_XOR) result = old_value ^ operand;
  o = write_operand(*this, d, *op, size, result);
  if (!o.continues()) return finish_outcome(o);
  if (m == ZYDIS_MNEMONIC_XCHG) {
    write_gpr(cpu_, other.reg.value, old_value);
  } else if (m != ZYDIS_MNEMONIC_MOV) {
    cpu_.eflags = logical_flags(cpu_.eflags, result, size);
  }
  // A store leaves the view as it was (a page-table store takes effect at
  // the guest's next TLB flush), so the dispatcher need not rebuild it.
  cpu_.eip = d.next_eip();
  load_context();
  return std::nullopt;
}

// After a trace fault. Some forms are done in software through guest linear
// memory, which does the tracing work: those of is_software_store, and the string
// copy Linux's memcpy() is made of (rep movsd, then rep movsb), with which
// text_poke() patches kernel code on every jump-label flip. Opening the page
// and running the instruction singly instead cost two protects, a 4 KiB
// compare and a unit lookup on top of the fault.
std::optional<VcpuExit> BtVcpu::store_to_traced_page(uint32_t linear, uint32_t physical) {
  DecodedInstruction d;
  if (!decode_at(context_->eip, &d)) return emulate_traced_store(linear, physical);
  const uint64_t start = now_ns();
  const ZydisDecodedOperand* op = explicit_store_operand(d);
  const ZydisMnemonic m = d.mnemonic();
  std::optional<VcpuExit> exit;
  bool done = false;
  if (op != nullptr && is_software_store(d, op)) {
    save_context();
    exit = run_traced_store(d);
    done = true;
  } else if ((m == ZYDIS_MNEMONIC_MOVSB || m == ZYDIS_MNEMONIC_MOVSW ||
              m == ZYDIS_MNEMONIC_MOVSD) &&
             d.insn.address_width == 32 && d.operands[0].type == ZYDIS_OPERAND_TYPE_MEMORY) {
    save_context();
    done = copy_string(d, &exit);
  }
  if (!done) return emulate_traced_store(linear, physical);
  step_retired_ = true;
  ++counters_.trace_writes;
  counters_.trace_write_ns += now_ns() - start;
  return exit;
}

// Element by element, as the hardware does (so overlapping copies come out
// the same); a fault part-way leaves ESI, EDI and ECX at the element that
// faulted, as a rep instruction interrupted there would. False: not the
// plain form (DF set, segments not flat, more than a page), nothing done.
bool BtVcpu::copy_string(const DecodedInstruction& d, std::optional<VcpuExit>* exit) {
  const int size = d.operands[0].size / 8;
  const bool rep = d.has_attribute(ZYDIS_ATTRIB_HAS_REP);
  const uint32_t count = rep ? cpu_.reg(Gpr::kEcx) : 1;
  if ((cpu_.eflags & eflags::kDf) || count == 0 || uint64_t{count} * size > kPage ||
      !is_flat(cpu_.segment(SegReg::kEs)) ||
      !is_flat(cpu_.segment(segment_of(d.operands[1].mem.segment)))) {
    return false;
  }
  const bool user = mode_.cpl == 3;
  uint32_t done = 0;
  SystemOutcome o = SystemOutcome::ok();
  while (done < count && o.continues()) {
    uint32_t value = 0;
    const uint32_t offset = done * size;
    o = read_linear_value(*this, cpu_.reg(Gpr::kEsi) + offset, size, &value, user);
    if (o.continues()) {
      o = write_linear_value(*this, cpu_.reg(Gpr::kEdi) + offset, size, value, user);
    }
    if (o.continues()) ++done;
  }
  cpu_.reg(Gpr::kEsi) += done * size;
  cpu_.reg(Gpr::kEdi) += done * size;
  if (rep) cpu_.reg(Gpr::kEcx) -= done;
  if (o.continues()) cpu_.eip = d.next_eip();
  *exit = finish_outcome(o);
  return true;
}

std::optional<VcpuExit> BtVcpu::emulate_traced_store(uint32_t linear, uint32_t physical) {
  const uint64_t start = now_ns();
  ++counters_.trace_writes;
  std::vector<OpenedPage> pages;
  uint32_t next = linear;
  const auto enter = cache_.stubs().enter_function();
  for (;;) {
    const uint32_t linear_page = next >> 12;
    const HiddenFaultResult mapped = mmu_.resolve_fault(*space_, window_, next, false);
    if (mapped.kind != HiddenFaultResult::Kind::kMapped) {
      close_pages(pages);
      save_context();
      return deliver(
          GuestEvent::exception({vector::kPf, mapped.error_code | pf_error::kWrite, next}));
    }
    space_->window(window_).protect(linear_page << 12, kPage, HostProtection::kReadWrite);
    OpenedPage page{linear_page, physical & ~(kPage - 1), {}};
    page.unassigned =
        space_->mappings(window_).at(linear_page).frame == ShadowAddressSpace::kUnassignedFrame;
    if (!page.unassigned) {
      const uint8_t* host = machine_.memory().host_pointer(page.physical_page, kPage);
      page.before.assign(host, host + kPage);
    }
    pages.push_back(std::move(page));

    std::optional<VcpuExit> exit;
    TranslationUnit* unit = unit_for(context_->eip, true, &exit);
    if (unit == nullptr) {
      close_pages(pages);
      return exit;
    }
    sync_selectors();
    enter(context_, unit->host_start);
    const bool another_store = fault_.kind == HostFault::Kind::kTraceWrite ||
                               (fault_.kind == HostFault::Kind::kNotRam && fault_.write);
    if (context_->exit_id == kExitHostFault && another_store && pages.size() < kMaxOpenedPages) {
      next = fault_.linear;
      physical = fault_.physical;
      continue;
    }
    break;
  }
  close_pages(pages);
  counters_.trace_write_ns += now_ns() - start;
  return handle_exit(context_->exit_id);
}

// Puts the trace protection back, then reports exactly the bytes the
// instruction changed (unchanged bytes need no derived-state update).
void BtVcpu::close_pages(std::vector<OpenedPage>& pages) {
  for (const OpenedPage& p : pages) {
    const auto& mappings = space_->mappings(window_);
    if (mappings.contains(p.linear_page)) {
      space_->window(window_).protect(p.linear_page << 12, kPage, HostProtection::kRead);
    }
  }
  for (const OpenedPage& p : pages) {
    if (p.unassigned) {
      std::memset(unassigned_.view, 0, kPage);
      continue;
    }
    const uint8_t* now = machine_.memory().host_pointer(p.physical_page, kPage);
    uint32_t i = 0;
    while (i < kPage) {
      if (now[i] == p.before[i]) {
        ++i;
        continue;
      }
      uint32_t end = i + 1;
      while (end < kPage && (now[end] != p.before[end] ||
                             (end + 1 < kPage && now[end + 1] != p.before[end + 1]))) {
        ++end;
      }
      const TraceKinds k = mmu_.note_guest_write(p.physical_page + i, end - i);
      if (debug_hooks_) debug_hooks_->traced_write(p.physical_page + i, end - i, k);
      if (has_kind(k, TraceKind::kCode)) invalidate_physical(p.physical_page + i, end - i);
      if (has_kind(k, TraceKind::kDescriptorTable)) ++descriptor_generation_;
      i = end;
    }
  }
  pages.clear();
}

void BtVcpu::invalidate_physical(uint32_t physical, uint32_t length) {
  const uint32_t end = physical + length;
  for (TranslationUnit* u : cache_.units_from_physical(physical, end)) {
    cache_.retire(*u);
    ++counters_.code_invalidations;
  }
  for (uint32_t frame = physical >> 12; frame <= (end - 1) >> 12; ++frame) {
    if (!cache_.frame_has_code(frame)) mmu_.untrace_frame(frame, TraceKind::kCode);
  }
}

// --- Memory for the shared callouts ----------------------------------------

bool BtVcpu::read(uint32_t address, void* data, uint32_t size, GuestException* fault) {
  auto f = linear_.read(paging_mode_of(cpu_), address, {static_cast<uint8_t*>(data), size},
                        cpu_.cpl() == 3);
  if (!f) return true;
  *fault = f->not_ram ? GuestException{vector::kGp, 0u, std::nullopt}
                      : GuestException{vector::kPf, f->error_code, f->linear};
  return false;
}

bool BtVcpu::write(uint32_t address, const void* data, uint32_t size, GuestException* fault) {
  const LinearWriteResult r = linear_.write(
      paging_mode_of(cpu_), address, {static_cast<const uint8_t*>(data), size}, cpu_.cpl() == 3);
  if (r.fault) {
    *fault = r.fault->not_ram ? GuestException{vector::kGp, 0u, std::nullopt}
                              : GuestException{vector::kPf, r.fault->error_code, r.fault->linear};
    return false;
  }
  if (r.traced != 0) traced_memory_written(address, size, r.traced);
  return true;
}

std::string BtVcpu::statistics() const {
  BtCounters c = counters_;
  c.nonglobal_detaches = nonglobal_.page_closes();
  c.guard_pages_reopened = nonglobal_.pages_reopened();
  c.guard_pages_kept = nonglobal_.pages_kept();
  c.guard_pages_promoted = nonglobal_.pages_promoted();
  return format_bt_stats(c, translator_.stats(), cache_, mmu_.stats());
}

}  // namespace bt86
