// The BT backend's counters, printed by `bt86 run --stats` at exit.
//
// Each figure is counted where it happens (dispatcher, fault handler,
// callouts); the translation-cache and shadow-MMU figures are read from
// their owners when the report is made. Times are host nanoseconds spent in
// the runtime's handling (not in translated code), per activity.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>

#include "shadow/shadow_mmu.h"
#include "translator/translation_cache.h"
#include "translator/translator.h"

namespace bt86 {

struct BtCounters {
  uint64_t dispatches = 0;  // Entries into the cache from the dispatcher.
  uint64_t lookups = 0;     // Dispatcher lookups of a unit by key.
  uint64_t lookup_hits = 0;
  uint64_t chained_jumps = 0;  // Direct exits linked.
  uint64_t indirect_misses = 0;
  // Code pages whose units' entry guards were closed by an invlpg (not
  // counting address-space switches).
  uint64_t nonglobal_detaches = 0;
  // Entries through a closed guard (trips to the dispatcher). Code pages
  // whose guards a TLB flush kept open because the page still mapped the
  // same frame, those it opened again because their frame came back, and
  // those it found global and promoted (NonGlobalUnits).
  uint64_t closed_guards_hit = 0;
  uint64_t guard_pages_kept = 0;
  uint64_t guard_pages_reopened = 0;
  uint64_t guard_pages_promoted = 0;
  uint64_t hidden_page_faults = 0;
  uint64_t guest_page_faults = 0;
  std::array<uint64_t, 3> trace_faults{};  // By TraceKind bit: page table, descriptor, code.
  uint64_t trace_writes = 0;
  uint64_t code_invalidations = 0;  // Units retired by self-modifying code.
  uint64_t adaptations = 0;
  uint64_t adaptations_reverted = 0;
  uint64_t interrupts_injected = 0;
  uint64_t exceptions_delivered = 0;
  uint64_t halts = 0;
  uint64_t poll_exits = 0;
  std::map<std::string, uint64_t> callouts;  // By instruction or callout name.
  std::map<std::string, uint64_t> callout_ns;
  uint64_t translate_ns = 0;
  uint64_t hidden_fault_ns = 0;
  uint64_t trace_write_ns = 0;
  uint64_t delivery_ns = 0;
  uint64_t halt_ns = 0;
};

std::string format_bt_stats(const BtCounters& c, const TranslatorStats& translator,
                            const TranslationCache& cache, const ShadowMmuStats& mmu);

}  // namespace bt86
