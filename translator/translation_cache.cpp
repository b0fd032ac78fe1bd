#include "translator/translation_cache.h"

#include <stdexcept>

#include "translator/unit_linker.h"

namespace bt86 {

namespace {
constexpr uint64_t kUnitAlignment = 16;

void add_unit_totals(const TranslationUnit& u, ExecutedTotals& t) {
  if (u.execution_counter == nullptr) return;
  const uint64_t n = *u.execution_counter;
  t.ident += n * u.ident_count;
  t.compensated += n * u.compensated_count;
  t.callout += n * u.callout_count;
  t.instructions += n * (u.ident_count + u.compensated_count + u.callout_count);
}
}  // namespace

TranslationCache::TranslationCache(size_t code_bytes)
    : memory_(code_bytes), stubs_(emit_cache_stubs(memory_)), lookup_(stubs_.indirect_miss) {
  cursor_ = stubs_.end;
}

TranslationUnit* TranslationCache::find(uint32_t guest_eip) {
  auto it = by_guest_.find(guest_eip);
  return it == by_guest_.end() ? nullptr : it->second;
}

const TranslationUnit* TranslationCache::unit_at_host(uint64_t exec_address) const {
  auto it = by_host_.upper_bound(exec_address);
  if (it == by_host_.begin()) return nullptr;
  --it;
  const TranslationUnit* u = it->second;
  return exec_address - u->host_start < u->host_size ? u : nullptr;
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
  by_guest_[u.guest_start] = &u;
  by_host_[u.host_start] = &u;
  return u;
}

void TranslationCache::link(uint32_t exit_id, TranslationUnit& target) {
  link_exit(memory_, exit_id, exits_[exit_id], target);
}

void TranslationCache::retire(TranslationUnit& unit) {
  unit.live = false;
  unlink_incoming(memory_, exits_, unit);
  lookup_.remove_host_range(unit.host_start, unit.host_start + unit.host_size);
  by_guest_.erase(unit.guest_start);
  by_host_.erase(unit.host_start);
}

void TranslationCache::invalidate(uint32_t guest_begin, uint32_t guest_end) {
  for (auto& u : units_) {
    if (u->live && u->guest_start < guest_end && guest_begin < u->guest_end) retire(*u);
  }
}

void TranslationCache::flush() {
  for (const auto& u : units_) add_unit_totals(*u, flushed_totals_);
  units_.clear();
  exits_.clear();
  by_guest_.clear();
  by_host_.clear();
  counters_.clear();
  lookup_.clear();
  cursor_ = stubs_.end;
  ++flush_count_;
}

ExecutedTotals TranslationCache::executed_totals() const {
  ExecutedTotals t = flushed_totals_;
  for (const auto& u : units_) add_unit_totals(*u, t);
  return t;
}

}  // namespace bt86
