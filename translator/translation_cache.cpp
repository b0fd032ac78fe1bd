#include "translator/translation_cache.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <stdexcept>

#include "translator/unit_linker.h"

namespace bt86 {

namespace {
constexpr uint64_t kUnitAlignment = 16;

void write_u64(CodeMemory& memory, uint64_t exec_address, uint64_t value) {
  uint8_t bytes[sizeof value];
  std::memcpy(bytes, &value, sizeof value);
  memory.write(exec_address, bytes);
}

void add_unit_totals(const TranslationUnit& u, ExecutedTotals& t) {
  for (size_t i = 0; i < u.segments.size(); ++i) {
    const ExecutionSegment& s = u.segments[i];
    const bool last = i + 1 == u.segments.size();
    const uint32_t ident = (last ? u.ident_count : u.segments[i + 1].ident_before) - s.ident_before;
    const uint32_t compensated =
        (last ? u.compensated_count : u.segments[i + 1].compensated_before) - s.compensated_before;
    const uint32_t callout =
        (last ? u.callout_count : u.segments[i + 1].callout_before) - s.callout_before;
    const uint64_t n = *s.counter;
    t.ident += n * ident;
    t.compensated += n * compensated;
    t.callout += n * callout;
    t.instructions += n * (ident + compensated + callout);
  }
}
}  // namespace

TranslationCache::TranslationCache(size_t code_bytes)
    : memory_(code_bytes), stubs_(emit_cache_stubs(memory_)) {
  cursor_ = stubs_.end;
  guard_chunks_bottom_ = memory_.exec_base() + memory_.size();
}

IndirectLookupTable& TranslationCache::lookup_for_mode(uint32_t mode_key,
                                                       const CodeSegment& code_segment) {
  ++lookup_choices_;
  for (ModeLookup& l : lookups_) {
    if (l.mode_key == mode_key && l.code_segment == code_segment) {
      l.last_chosen = lookup_choices_;
      return *l.table;
    }
  }
  if (lookups_.size() < kLookupTables) {
    lookups_.push_back(ModeLookup{mode_key, code_segment, lookup_choices_,
                                  std::make_unique<IndirectLookupTable>(stubs_.indirect_miss)});
    return *lookups_.back().table;
  }
  ModeLookup& oldest = *std::min_element(
      lookups_.begin(), lookups_.end(),
      [](const ModeLookup& a, const ModeLookup& b) { return a.last_chosen < b.last_chosen; });
  oldest.table->clear();
  oldest.mode_key = mode_key;
  oldest.code_segment = code_segment;
  oldest.last_chosen = lookup_choices_;
  return *oldest.table;
}

TranslationUnit* TranslationCache::find(const UnitKey& key) {
  auto it = by_guest_.find(key);
  return it == by_guest_.end() ? nullptr : it->second;
}

const TranslationUnit* TranslationCache::unit_at_host(uint64_t exec_address) const {
  auto it = std::upper_bound(host_starts_.begin(), host_starts_.end(), exec_address);
  if (it == host_starts_.begin()) return nullptr;
  const TranslationUnit* u = units_[static_cast<size_t>(it - host_starts_.begin()) - 1].get();
  return u->live && exec_address - u->host_start < u->host_size ? u : nullptr;
}

uint32_t TranslationCache::add_exit(const ExitRecord& exit) {
  exits_.push_back(exit);
  return static_cast<uint32_t>(exits_.size() - 1);
}

uint64_t* TranslationCache::new_execution_counter() {
  counters_.push_back(0);
  return &counters_.back();
}

TranslationUnit& TranslationCache::commit(std::unique_ptr<TranslationUnit> unit,
                                          std::span<const uint8_t> code) {
  if (!fits(code.size()) || unit->host_start != cursor_) {
    throw std::logic_error("unit committed at the wrong place");
  }
  memory_.write(cursor_, code);
  cursor_ = (cursor_ + code.size() + kUnitAlignment - 1) & ~(kUnitAlignment - 1);
  TranslationUnit& u = *unit;
  units_.push_back(std::move(unit));
  host_starts_.push_back(u.host_start);
  by_guest_[u.key] = &u;
  return u;
}

void TranslationCache::link(uint32_t exit_id, TranslationUnit& target, bool guarded) {
  if (target.incoming_links.empty()) linked_targets_.push_back(&target);
  uint64_t destination = guarded ? target.guarded_entry : target.host_start;
  if (!guarded && exits_[exit_id].unit == target.id) destination = target.loop_entry;
  link_exit(memory_, exit_id, exits_[exit_id], target, destination);
}

void TranslationCache::break_loop_at(uint64_t rip) {
  // Outside the cache the thread may be in the middle of changing it.
  if (!memory_.contains(rip)) return;
  const TranslationUnit* unit = unit_at_host(rip);
  if (unit == nullptr) return;
  if (retarget_own_links(*unit, unit->loop_entry, unit->host_start) &&
      broken_loop_count_ < kMaxBrokenLoops) {
    broken_loops_[broken_loop_count_++] = unit->id;
  }
}

void TranslationCache::restore_loops() {
  for (size_t i = 0; i < broken_loop_count_; ++i) {
    const TranslationUnit& unit = *units_[broken_loops_[i]];
    if (unit.live) retarget_own_links(unit, unit.host_start, unit.loop_entry);
  }
  broken_loop_count_ = 0;
}

bool TranslationCache::retarget_own_links(const TranslationUnit& unit, uint64_t from, uint64_t to) {
  bool any = false;
  for (uint32_t id : unit.incoming_links) {
    ExitRecord& exit = exits_[id];
    if (exit.unit != unit.id || exit.linked_to != from) continue;
    relink_exit(memory_, exit, to);
    any = true;
  }
  return any;
}

uint32_t TranslationCache::new_guard_chunk(uint32_t capacity) {
  const uint64_t bytes = sizeof(uint64_t) * (1 + 2 * uint64_t{capacity});
  if (guard_chunks_bottom_ - cursor_ < bytes) return kNoGuardChunk;
  guard_chunks_bottom_ -= bytes;
  const uint64_t gate = guard_chunks_bottom_;
  write_u64(memory_, gate, gate + sizeof(uint64_t) * (1 + capacity));
  guard_chunks_.push_back({gate, capacity, 0, false});
  return static_cast<uint32_t>(guard_chunks_.size() - 1);
}

bool TranslationCache::join_guard_chunk(uint32_t chunk, TranslationUnit& unit) {
  GuardChunk& c = guard_chunks_[chunk];
  if (c.used == c.capacity || unit.guard_chunk != kNoGuardChunk) return false;
  const uint32_t index = c.used++;
  const uint64_t open_table = c.gate + sizeof(uint64_t);
  write_u64(memory_, open_table + sizeof(uint64_t) * index, unit.host_start);
  write_u64(memory_, open_table + sizeof(uint64_t) * (c.capacity + index), unit.guard_stub);
  // mov r11, [rip + gate]; jmp qword [r11 + 8 * index]. r11 holds nothing
  // between guest instructions, and neither instruction touches RFLAGS.
  const int64_t gate_displacement = static_cast<int64_t>(c.gate - (unit.guarded_entry + 7));
  const uint32_t rel = static_cast<uint32_t>(static_cast<int32_t>(gate_displacement));
  const uint32_t table_offset = sizeof(uint64_t) * index;
  std::array<uint8_t, kGuardBytes> code = {0x4C, 0x8B, 0x1D, 0, 0, 0, 0, 0x41, 0xFF, 0xA3};
  std::memcpy(code.data() + 3, &rel, sizeof rel);
  std::memcpy(code.data() + 10, &table_offset, sizeof table_offset);
  memory_.write(unit.guarded_entry, code);
  unit.guard_chunk = chunk;
  return true;
}

void TranslationCache::set_guard_chunk(uint32_t chunk, bool open) {
  GuardChunk& c = guard_chunks_[chunk];
  if (c.open == open) return;
  c.open = open;
  write_u64(memory_, c.gate, c.gate + sizeof(uint64_t) * (1 + (open ? 0 : c.capacity)));
}

void TranslationCache::index_code(TranslationUnit& unit) {
  for (const CodeRange& r : unit.code) {
    by_frame_[r.physical >> 12].push_back(&unit);
    by_linear_page_[r.linear_page].push_back(&unit);
  }
}

std::vector<TranslationUnit*> TranslationCache::units_from_physical(uint32_t physical_begin,
                                                                    uint32_t physical_end) const {
  std::vector<TranslationUnit*> found;
  if (physical_end <= physical_begin) return found;
  for (uint32_t frame = physical_begin >> 12; frame <= (physical_end - 1) >> 12; ++frame) {
    auto it = by_frame_.find(frame);
    if (it == by_frame_.end()) continue;
    for (TranslationUnit* u : it->second) {
      if (!u->live) continue;
      for (const CodeRange& r : u->code) {
        if (r.physical < physical_end && physical_begin < r.physical + r.length) {
          if (std::find(found.begin(), found.end(), u) == found.end()) found.push_back(u);
        }
      }
    }
  }
  return found;
}

bool TranslationCache::frame_has_code(uint32_t frame) const {
  auto it = by_frame_.find(frame);
  if (it == by_frame_.end()) return false;
  return std::any_of(it->second.begin(), it->second.end(),
                     [](const TranslationUnit* u) { return u->live; });
}

std::span<TranslationUnit* const> TranslationCache::units_on_linear_page(
    uint32_t linear_page) const {
  auto it = by_linear_page_.find(linear_page);
  if (it == by_linear_page_.end()) return {};
  return it->second;
}

void TranslationCache::detach(TranslationUnit& unit) {
  unlink_incoming(memory_, exits_, unit);
  // Entries point at unit entries or guarded entries and are filed under
  // the unit's EIP.
  for (ModeLookup& l : lookups_) {
    l.table->remove(unit.guest_start, unit.host_start);
    l.table->remove(unit.guest_start, unit.guarded_entry);
  }
}

void TranslationCache::unlink_all() {
  for (TranslationUnit* u : linked_targets_) unlink_incoming(memory_, exits_, *u);
  linked_targets_.clear();
  for (ModeLookup& l : lookups_) l.table->clear();
}

void TranslationCache::retire(TranslationUnit& unit) {
  if (!unit.live) return;
  unit.live = false;
  detach(unit);
  for (const CodeRange& r : unit.code) {
    for (auto* index : {&by_frame_, &by_linear_page_}) {
      const uint32_t k = index == &by_frame_ ? r.physical >> 12 : r.linear_page;
      auto it = index->find(k);
      if (it == index->end()) continue;
      std::erase(it->second, &unit);
      if (it->second.empty()) index->erase(it);
    }
  }
  auto g = by_guest_.find(unit.key);
  if (g != by_guest_.end() && g->second == &unit) by_guest_.erase(g);
}

void TranslationCache::invalidate(uint32_t guest_begin, uint32_t guest_end) {
  for (auto& u : units_) {
    if (u->live && u->guest_start < guest_end && guest_begin < u->guest_end) retire(*u);
  }
}

void TranslationCache::flush() {
  for (const auto& u : units_) add_unit_totals(*u, flushed_totals_);
  units_.clear();
  host_starts_.clear();
  broken_loop_count_ = 0;
  exits_.clear();
  linked_targets_.clear();
  by_guest_.clear();
  by_frame_.clear();
  by_linear_page_.clear();
  counters_.clear();
  guard_chunks_.clear();
  guard_chunks_bottom_ = memory_.exec_base() + memory_.size();
  for (ModeLookup& l : lookups_) l.table->clear();
  cursor_ = stubs_.end;
  ++flush_count_;
}

ExecutedTotals TranslationCache::executed_totals() const {
  ExecutedTotals t = flushed_totals_;
  for (const auto& u : units_) add_unit_totals(*u, t);
  return t;
}

}  // namespace bt86
