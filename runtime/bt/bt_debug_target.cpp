#include "runtime/bt/bt_debug_target.h"

#include <algorithm>

#include <fmt/format.h>

#include "runtime/system/system_context.h"

namespace bt86 {
namespace {

constexpr uint32_t kPage = 4096;

// linear -> physical in the guest's current paging mode, without touching
// accessed/dirty bits.
std::optional<uint32_t> probe_physical(GuestPageWalker& walker, const CpuState& cpu,
                                       uint32_t linear) {
  const std::optional<PagingMode> mode = paging_mode_of(cpu);
  if (!mode) return linear;
  const PageWalkResult r = walker.probe(*mode, linear, {AccessType::kRead, false});
  if (!r.ok()) return std::nullopt;
  return r.translation->physical;
}

}  // namespace

BtDebugTarget::BtDebugTarget(Machine& machine, std::unique_ptr<BtVcpu> vcpu)
    : machine_(machine), vcpu_(std::move(vcpu)) {
  vcpu_->set_debug_hooks(this);
}

BtDebugTarget::~BtDebugTarget() {
  vcpu_->set_debug_hooks(nullptr);
}

DebugStop BtDebugTarget::step() {
  return run(Mode::kStep);
}

DebugStop BtDebugTarget::resume() {
  return run(Mode::kRun);
}

void BtDebugTarget::interrupt() {
  interrupted_.store(true, std::memory_order_release);
  vcpu_->request_stop();
}

DebugStop BtDebugTarget::run(Mode mode) {
  mode_ = mode;
  steps_done_ = 0;
  first_dispatch_ = true;
  start_eip_ = vcpu_->state().eip;
  hook_stopped_ = false;
  watch_hit_.reset();
  const VcpuExit exit = vcpu_->run();
  DebugStop stop;
  stop.exit = exit;
  const bool interrupted = interrupted_.exchange(false, std::memory_order_acq_rel);
  if (exit.kind != VcpuExit::Kind::kStopRequested) {
    stop.kind = DebugStop::Kind::kExited;
  } else if (watch_hit_) {
    stop.kind = DebugStop::Kind::kWatchpoint;
    stop.address = *watch_hit_;
  } else if (hook_stopped_) {
    stop.kind = mode == Mode::kStep ? DebugStop::Kind::kStep : DebugStop::Kind::kBreakpoint;
  } else if (interrupted) {
    stop.kind = DebugStop::Kind::kInterrupted;
  } else {
    stop.kind = DebugStop::Kind::kExited;  // The machine's stop: timeout, signal.
  }
  return stop;
}

bool BtDebugTarget::stop_before(uint32_t eip) {
  const bool first = first_dispatch_;
  first_dispatch_ = false;
  bool stop = false;
  if (watch_hit_) {
    stop = true;
  } else if (mode_ == Mode::kStep) {
    stop = steps_done_ >= 1;
  } else {
    stop = breakpoints_.contains(eip) && !(first && eip == start_eip_);
  }
  hook_stopped_ = stop;
  return stop;
}

bool BtDebugTarget::run_single(const TranslationUnit& unit) {
  if (mode_ == Mode::kStep) {
    ++steps_done_;
    return true;
  }
  return holds_breakpoint(unit);
}

bool BtDebugTarget::may_enter_directly(const TranslationUnit& unit) {
  return !holds_breakpoint(unit);
}

bool BtDebugTarget::holds_breakpoint(const TranslationUnit& unit) const {
  auto it = breakpoints_.lower_bound(unit.guest_start);
  return it != breakpoints_.end() && *it < std::max(unit.guest_end, unit.guest_start + 1);
}

void BtDebugTarget::trace_fault(uint32_t physical, TraceKinds) {
  ++trace_fault_counts_[physical >> 12];
}

void BtDebugTarget::traced_write(uint32_t physical, uint32_t length, TraceKinds kinds) {
  if (!has_kind(kinds, TraceKind::kWatch) || watch_hit_) return;
  for (const Watchpoint& w : watchpoints_) {
    uint32_t offset = 0;
    for (const auto& [first, size] : w.physical) {
      const uint32_t lo = std::max(first, physical);
      const uint32_t hi = std::min(first + size, physical + length);
      if (lo < hi) {
        watch_hit_ = w.linear + offset + (lo - first);
        return;
      }
      offset += size;
    }
  }
}

void BtDebugTarget::insert_breakpoint(uint32_t eip) {
  breakpoints_.insert(eip);
  // Chained jumps and lookup entries into the units that hold it go with them.
  vcpu_->cache_.invalidate(eip, eip + 1);
}

void BtDebugTarget::remove_breakpoint(uint32_t eip) {
  breakpoints_.erase(eip);
}

bool BtDebugTarget::insert_watchpoint(uint32_t linear, uint32_t length, std::string* why) {
  if (length == 0 || length > 64 * kPage) {
    *why = "a watchpoint covers 1 byte to 256 KiB";
    return false;
  }
  const CpuState cpu = vcpu_->state();
  Watchpoint w{linear, length, {}};
  for (uint32_t done = 0; done < length;) {
    const uint32_t at = linear + done;
    const uint32_t piece = std::min(length - done, kPage - (at & (kPage - 1)));
    const std::optional<uint32_t> physical = probe_physical(vcpu_->mmu_.walker(), cpu, at);
    if (!physical || !machine_.memory().contains(*physical, piece)) {
      *why = fmt::format("{:#010x} is not mapped to RAM", at);
      return false;
    }
    w.physical.emplace_back(*physical, piece);
    done += piece;
  }
  for (const auto& [first, size] : w.physical) {
    vcpu_->mmu_.trace_frame(first >> 12, TraceKind::kWatch);
  }
  watchpoints_.push_back(std::move(w));
  return true;
}

void BtDebugTarget::remove_watchpoint(uint32_t linear, uint32_t length) {
  std::erase_if(watchpoints_,
                [&](const Watchpoint& w) { return w.linear == linear && w.length == length; });
  retrace_watched_frames();
}

// Untraces the frames no watchpoint covers any more.
void BtDebugTarget::retrace_watched_frames() {
  std::set<uint32_t> watched;
  for (const Watchpoint& w : watchpoints_) {
    for (const auto& [first, size] : w.physical) watched.insert(first >> 12);
  }
  std::vector<uint32_t> stale;
  for (const auto& [frame, kinds] : vcpu_->mmu_.traced_frames()) {
    if (has_kind(kinds, TraceKind::kWatch) && !watched.contains(frame)) stale.push_back(frame);
  }
  for (uint32_t frame : stale) vcpu_->mmu_.untrace_frame(frame, TraceKind::kWatch);
}

void BtDebugTarget::memory_written(uint32_t physical, uint32_t length) {
  vcpu_->mmu_.note_guest_write(physical, length);
  vcpu_->mmu_.flush_table_writes();  // The user expects to see the write take effect.
  vcpu_->invalidate_physical(physical, length);
  vcpu_->forget_descriptor_tables();
  vcpu_->nonglobal_.close_all();
}

std::vector<const TranslationUnit*> BtDebugTarget::units_covering(uint32_t linear) {
  std::vector<const TranslationUnit*> found;
  for (const TranslationUnit* u : vcpu_->cache_.units_on_linear_page(linear >> 12)) {
    if (u->live && u->guest_start <= linear && linear < u->guest_end) found.push_back(u);
  }
  std::sort(found.begin(), found.end(),
            [](const TranslationUnit* a, const TranslationUnit* b) { return a->id < b->id; });
  return found;
}

std::vector<const TranslationUnit*> BtDebugTarget::live_units() {
  std::vector<const TranslationUnit*> all;
  TranslationCache& cache = vcpu_->cache_;
  for (uint32_t id = 0; id < cache.next_unit_id(); ++id) {
    if (cache.unit(id).live) all.push_back(&cache.unit(id));
  }
  return all;
}

const TranslationUnit* BtDebugTarget::unit_at_host(uint64_t exec_address) const {
  const TranslationUnit* u = vcpu_->cache_.unit_at_host(exec_address);
  return u != nullptr && u->is_entry(exec_address) ? u : nullptr;
}

void BtDebugTarget::flush_cache() {
  vcpu_->cache_.flush();
  vcpu_->nonglobal_.close_all();
}

std::vector<BtDebugTarget::TracedFrame> BtDebugTarget::traced_frames() const {
  std::vector<TracedFrame> frames;
  for (const auto& [frame, kinds] : vcpu_->mmu_.traced_frames()) {
    auto it = trace_fault_counts_.find(frame);
    frames.push_back({frame, kinds, it == trace_fault_counts_.end() ? 0 : it->second});
  }
  std::sort(frames.begin(), frames.end(),
            [](const TracedFrame& a, const TracedFrame& b) { return a.frame < b.frame; });
  return frames;
}

}  // namespace bt86
