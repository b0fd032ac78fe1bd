#include "runtime/bt/bt_stats.h"

#include <fmt/format.h>

namespace bt86 {
namespace {

double percent(uint64_t part, uint64_t whole) {
  return whole == 0 ? 0.0 : 100.0 * static_cast<double>(part) / static_cast<double>(whole);
}

double ms(uint64_t ns) {
  return static_cast<double>(ns) / 1e6;
}

}  // namespace

std::string format_bt_stats(const BtCounters& c, const TranslatorStats& translator,
                            const TranslationCache& cache, const ShadowMmuStats& mmu) {
  const ExecutedTotals e = cache.executed_totals();
  std::string s = "bt86 statistics (BT backend)\n";
  s += fmt::format(
      "  translation: {} units, {} guest instructions, {} bytes of host code, {} "
      "cache flushes, {:.1f} ms\n",
      translator.units_translated, translator.guest_instructions_translated,
      translator.host_code_bytes, cache.flush_count(), ms(c.translate_ns));
  s += fmt::format(
      "  dispatch: {} cache entries, lookup hit rate {:.1f}% ({} of {}), {} chained "
      "jumps, {} indirect lookups that left the cache; non-global units: {} code pages closed "
      "by invlpg, {} closed guards hit, {} code pages kept open and {} reopened across TLB "
      "flushes, {} found global and promoted\n",
      c.dispatches, percent(c.lookup_hits, c.lookups), c.lookup_hits, c.lookups, c.chained_jumps,
      c.indirect_misses, c.nonglobal_detaches, c.closed_guards_hit, c.guard_pages_kept,
      c.guard_pages_reopened, c.guard_pages_promoted);
  s += fmt::format(
      "  executed guest instructions: {} ({:.1f}% IDENT, {:.1f}% compensated, "
      "{:.1f}% callout)\n",
      e.instructions, percent(e.ident, e.instructions), percent(e.compensated, e.instructions),
      percent(e.callout, e.instructions));
  s += fmt::format(
      "  hidden page faults: {} ({} pages mapped in {} host mappings, {} revived from {} revoked, "
      "{} of them at invlpg without a fault), {:.1f} ms\n",
      c.hidden_page_faults, mmu.pages_mapped, mmu.host_mappings_created, mmu.pages_revived,
      mmu.mappings_revoked, mmu.pages_revived_at_invlpg, ms(c.hidden_fault_ns));
  s += fmt::format(
      "  address spaces: {} created, {} evicted; {} directory regions kept when their entry was "
      "rewritten unchanged; {} detached when their directory was written while inactive, {} "
      "regions kept on their return; {} pages kept and {} reprotected when their table entry was "
      "rewritten for the same frame, {} when their frame stopped being traced\n",
      mmu.spaces_created, mmu.spaces_evicted, mmu.directory_rewrites_kept, mmu.spaces_detached,
      mmu.regions_kept_on_return, mmu.table_rewrites_kept, mmu.table_rewrites_reprotected,
      mmu.untraced_pages_kept);
  s += fmt::format("  guest page faults: {}; exceptions delivered: {}; interrupts injected: {}\n",
                   c.guest_page_faults, c.exceptions_delivered, c.interrupts_injected);
  s += fmt::format(
      "  trace faults: {} page-table, {} descriptor-table, {} code; {} units "
      "invalidated by code writes; {:.1f} ms\n",
      c.trace_faults[0], c.trace_faults[1], c.trace_faults[2], c.code_invalidations,
      ms(c.trace_write_ns));
  s += fmt::format(
      "  adaptations: {} instructions retranslated to store through a callout, {} reverted when "
      "they stopped hitting traced pages\n",
      c.adaptations, c.adaptations_reverted);
  s += fmt::format("  halts: {} ({:.1f} ms waiting); poll exits: {}; event delivery {:.1f} ms\n",
                   c.halts, ms(c.halt_ns), c.poll_exits, ms(c.delivery_ns));
  s += "  callouts:\n";
  for (const auto& [name, count] : c.callouts) {
    auto t = c.callout_ns.find(name);
    s += fmt::format("    {:<16} {:>12} {:>10.1f} ms\n", name, count,
                     t == c.callout_ns.end() ? 0.0 : ms(t->second));
  }
  return s;
}

}  // namespace bt86
