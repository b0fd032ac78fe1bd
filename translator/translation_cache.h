// The translation cache: code memory (W^X dual mapping), the fixed stubs,
// the units and their exits, the guest-EIP index and the indirect lookup
// table.
//
// Sizing policy: code is bump-allocated; when a unit does not fit, the whole
// cache is flushed (counted in flush_count()) and translation starts over.
// Flushes and invalidations happen only from the dispatcher, never while
// translated code runs. invalidate() unlinks and retires every unit that
// overlaps a guest range; their space is reclaimed at the next flush.
// Retired units keep their execution counters until the flush folds them
// into retired_totals().
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

#include "translator/cache_stubs.h"
#include "translator/code_memory.h"
#include "translator/indirect_lookup.h"
#include "translator/translation_unit.h"

namespace bt86 {

struct ExecutedTotals {
  uint64_t instructions = 0;
  uint64_t ident = 0;
  uint64_t compensated = 0;
  uint64_t callout = 0;
};

class TranslationCache {
 public:
  explicit TranslationCache(size_t code_bytes);

  CodeMemory& memory() { return memory_; }
  const CacheStubs& stubs() const { return stubs_; }
  IndirectLookupTable& lookup() { return lookup_; }

  TranslationUnit* find(uint32_t guest_eip);
  // The live unit whose host code contains exec_address; async-signal-safe
  // as long as the cache is not being modified.
  const TranslationUnit* unit_at_host(uint64_t exec_address) const;

  uint64_t cursor() const { return cursor_; }
  bool fits(size_t bytes) const { return cursor_ + bytes <= memory_.exec_base() + memory_.size(); }

  uint32_t next_unit_id() const { return static_cast<uint32_t>(units_.size()); }
  uint32_t add_exit(const ExitRecord& exit);
  ExitRecord& exit(uint32_t id) { return exits_[id]; }
  bool has_exit(uint32_t id) const { return id < exits_.size(); }
  uint64_t* new_execution_counter();

  // Copies code to cursor() and indexes the unit; code must fit.
  TranslationUnit& commit(std::unique_ptr<TranslationUnit> unit, std::span<const uint8_t> code);
  void link(uint32_t exit_id, TranslationUnit& target);

  void invalidate(uint32_t guest_begin, uint32_t guest_end);
  void flush();

  uint64_t flush_count() const { return flush_count_; }
  ExecutedTotals executed_totals() const;

 private:
  void retire(TranslationUnit& unit);

  CodeMemory memory_;
  CacheStubs stubs_;
  IndirectLookupTable lookup_;
  uint64_t cursor_ = 0;
  std::vector<std::unique_ptr<TranslationUnit>> units_;
  std::vector<ExitRecord> exits_;
  std::unordered_map<uint32_t, TranslationUnit*> by_guest_;
  std::map<uint64_t, TranslationUnit*> by_host_;
  std::deque<uint64_t> counters_;
  ExecutedTotals flushed_totals_;
  uint64_t flush_count_ = 0;
};

}  // namespace bt86
