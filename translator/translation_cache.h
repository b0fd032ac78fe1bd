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
//
// Units are found by UnitKey (EIP, code frame, mode). There are two indirect
// lookup tables, one per privilege (supervisor, user), so an indirect branch
// at CPL 3 can never reach a unit translated for CPL 0. The runtime indexes
// the code ranges of each unit (index_code) so that a write to guest-physical
// memory retires exactly the units translated from it, and detach() cuts a
// unit off from links and lookups without retiring it (its translation stays
// right, only the ways in that skip validation must go). A cheaper cut, for
// units valid only in some address spaces, is closing the entry guards of a
// chunk of units (set_guard_chunk, TranslationUnit::guarded_entry): links
// and lookup entries that go through a guard then leave the cache until the
// runtime reopens it. Guard chunks live at the top of code memory and grow
// down towards the units; a flush frees both.
#pragma once

#include <absl/container/flat_hash_map.h>

#include <array>
#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <vector>

#include "translator/cache_stubs.h"
#include "translator/code_memory.h"
#include "translator/indirect_lookup.h"
#include "translator/translation_mode.h"
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
  const CodeMemory& memory() const { return memory_; }
  // The unit with this id (live or retired) until the next flush.
  TranslationUnit& unit(uint32_t id) { return *units_[id]; }
  const CacheStubs& stubs() const { return stubs_; }
  // The lookup table for code translated in this mode (TranslationMode::key()).
  // Each table holds entries of one mode only, and several are kept because
  // guests alternate between modes all the time (a Linux system call enters
  // CPL 0 with the user's segments and loads its per-CPU FS a few
  // instructions later): emptying a 1 MiB table at each switch cost more
  // than the system call itself. The least recently chosen table is reused.
  // A table also holds entries of one code segment only (EIPs are offsets
  // into it).
  IndirectLookupTable& lookup_for_mode(uint32_t mode_key, const CodeSegment& code_segment = {});
  static constexpr size_t kLookupTables = 8;

  TranslationUnit* find(const UnitKey& key);
  // The unit to run at eip, fetched from frame, in mode: one translated
  // for this mode or one shared by all modes that differ from it only in
  // TranslationMode::variant_mask().
  // Shared units are all flat-CS ones (sharing needs a flat CS).
  TranslationUnit* find(uint32_t eip, uint32_t frame, const TranslationMode& mode,
                        const CodeSegment& code_segment = {}) {
    if (mode.shares_units()) {
      if (TranslationUnit* u = find(UnitKey{eip, frame, mode.shared_key(), code_segment})) return u;
    }
    return find(UnitKey{eip, frame, mode.key(), code_segment});
  }
  // The live unit whose host code contains exec_address; async-signal-safe
  // as long as the cache is not being modified.
  const TranslationUnit* unit_at_host(uint64_t exec_address) const;

  uint64_t cursor() const { return cursor_; }
  bool fits(size_t bytes) const { return cursor_ + bytes <= guard_chunks_bottom_; }

  uint32_t next_unit_id() const { return static_cast<uint32_t>(units_.size()); }
  uint32_t add_exit(const ExitRecord& exit);
  ExitRecord& exit(uint32_t id) { return exits_[id]; }
  bool has_exit(uint32_t id) const { return id < exits_.size(); }
  uint64_t* new_execution_counter();

  // Copies code to cursor() and indexes the unit; code must fit.
  TranslationUnit& commit(std::unique_ptr<TranslationUnit> unit, std::span<const uint8_t> code);
  // guarded: through the target's entry guard (TranslationUnit::guarded_entry).
  // An exit of target itself is linked to its loop_entry, past the poll load.
  void link(uint32_t exit_id, TranslationUnit& target, bool guarded = false);
  // From the kick signal's handler on the vCPU thread, which was running
  // translated code at rip: points the back edges of the unit around rip at
  // its entry, so that the loop meets its poll load. Async-signal-safe: it
  // only stores into code, exit records and a fixed array. restore_loops()
  // (the dispatcher, after the poll exit) links them past the poll again; a
  // unit broken beyond kMaxBrokenLoops just stays on its entry.
  void break_loop_at(uint64_t rip);
  void restore_loops();

  // A guard chunk is a gate word and two tables of `capacity` destinations,
  // the units' entries and their guard stubs; the gate holds the address of
  // one table, so opening or closing every unit of a chunk is one store.
  // new_guard_chunk: a closed, empty chunk, or kNoGuardChunk when code
  // memory is full (the caller then goes without the guard).
  uint32_t new_guard_chunk(uint32_t capacity);
  // Makes unit (in no chunk yet) a member: its guard follows the chunk's
  // gate from now on. False if the chunk is full.
  bool join_guard_chunk(uint32_t chunk, TranslationUnit& unit);
  void set_guard_chunk(uint32_t chunk, bool open);
  bool guard_chunk_open(uint32_t chunk) const { return guard_chunks_[chunk].open; }

  // Records unit.code in the physical index (after the runtime filled it).
  void index_code(TranslationUnit& unit);
  // Live units translated from any byte of [physical_begin, physical_end).
  std::vector<TranslationUnit*> units_from_physical(uint32_t physical_begin,
                                                    uint32_t physical_end) const;
  // Whether any live unit was translated from this frame.
  bool frame_has_code(uint32_t frame) const;
  // Live units whose code lies in this linear page (retired ones leave the
  // index). The view is the index itself: it lasts until the next commit,
  // retire or flush, so a caller that retires copies it first.
  std::span<TranslationUnit* const> units_on_linear_page(uint32_t linear_page) const;

  void invalidate(uint32_t guest_begin, uint32_t guest_end);
  void retire(TranslationUnit& unit);
  // Unlinks every exit into unit and drops its lookup entries.
  void detach(TranslationUnit& unit);
  // Unlinks every direct link and empties the lookup tables.
  void unlink_all();
  void flush();

  uint64_t flush_count() const { return flush_count_; }
  ExecutedTotals executed_totals() const;

 private:
  CodeMemory memory_;
  CacheStubs stubs_;
  struct ModeLookup {
    uint32_t mode_key;
    CodeSegment code_segment;
    uint64_t last_chosen;
    std::unique_ptr<IndirectLookupTable> table;
  };
  std::vector<ModeLookup> lookups_;
  uint64_t lookup_choices_ = 0;
  uint64_t cursor_ = 0;
  // In commit order, which is also the order of their host addresses (code
  // is bump-allocated): host_starts_ is the parallel array of entries that
  // unit_at_host searches, so a fault in the cache needs no tree walk.
  std::vector<std::unique_ptr<TranslationUnit>> units_;
  std::vector<uint64_t> host_starts_;
  std::vector<ExitRecord> exits_;
  // Units that gained an incoming link since the last unlink_all (a unit
  // may be listed twice), so that unlink_all need not visit every unit.
  std::vector<TranslationUnit*> linked_targets_;
  // Open-addressed maps keep their entries inline: the dispatcher looks a
  // unit up after every callout and trace fault, and a node-based map missed
  // the data cache two or three times per lookup.
  absl::flat_hash_map<UnitKey, TranslationUnit*> by_guest_;
  absl::flat_hash_map<uint32_t, std::vector<TranslationUnit*>> by_frame_;
  absl::flat_hash_map<uint32_t, std::vector<TranslationUnit*>> by_linear_page_;
  struct GuardChunk {
    uint64_t gate;  // Exec address; the open table follows it, then the closed one.
    uint32_t capacity;
    uint32_t used;
    bool open;
  };
  std::vector<GuardChunk> guard_chunks_;
  uint64_t guard_chunks_bottom_ = 0;  // Exec address of the lowest chunk.
  std::deque<uint64_t> counters_;
  // Points unit's exits that link to itself at from to to instead (both
  // inside the unit); whether there were any. Async-signal-safe.
  bool retarget_own_links(const TranslationUnit& unit, uint64_t from, uint64_t to);
  // Between a kick and its poll exit translated code runs only in the unit
  // it was in, so one slot would do.
  static constexpr size_t kMaxBrokenLoops = 4;
  std::array<uint32_t, kMaxBrokenLoops> broken_loops_{};  // Unit ids.
  size_t broken_loop_count_ = 0;
  ExecutedTotals flushed_totals_;
  uint64_t flush_count_ = 0;
};

}  // namespace bt86
