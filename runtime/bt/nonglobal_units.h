// The non-global units whose entry guard is open.
//
// A non-global unit is right only in an address space that maps its code
// pages to the frames it was translated from. The dispatcher walks the
// guest tables before every entry, but links from units on other pages and
// lookup entries skip that walk, so they enter a non-global unit through
// its entry guard (TranslationUnit::guarded_entry), which is open only
// while the unit is known valid in the current space.
//
// Whenever the guest flushes its non-global TLB entries (a CR3 write, or
// invlpg of a page) the guards of the units concerned are closed: one store
// each, and links and lookup entries stay where they are. The first entry
// through a closed guard leaves the cache (a kGuard exit), and the runtime
// opens the guards of every unit on that page that is valid in the space
// current then. Unlinking every way in at each switch instead cost a shell
// that forks and waits about 2,000 trips to the dispatcher per fork+exec,
// one per link, to re-chain units that had been right all along.
//
//   NonGlobalUnits units(cache);
//   units.open(u);          // u is valid here and about to be linked to
//   units.close_all();      // CR3 write
//   units.open_page(page, valid);  // a closed guard on this page was hit
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "translator/translation_cache.h"

namespace bt86 {

class NonGlobalUnits {
 public:
  // Whether a unit may be entered without a walk in the current space: its
  // pages map to its frames there and nothing (a breakpoint) forbids it.
  using Validity = std::function<bool(const TranslationUnit&)>;

  explicit NonGlobalUnits(TranslationCache& cache) : cache_(cache) {}

  // Opens the guard of a unit just found valid in the current space.
  void open(TranslationUnit& unit);
  // Closes every open guard.
  void close_all();
  // Closes the guards of units translated from this linear page.
  void close_page(uint32_t linear_page);
  // Opens the guards of the live units on this linear page that are valid.
  void open_page(uint32_t linear_page, const Validity& valid);

  uint64_t page_closes() const { return page_closes_; }
  uint64_t guards_reopened() const { return guards_reopened_; }

 private:
  void forget_if_flushed();

  TranslationCache& cache_;
  // Ids of units whose guard was opened since the last close_all(); some
  // may have been closed since through their page. Valid while the cache's
  // flush count is flush_count_.
  std::vector<uint32_t> opened_;
  uint64_t flush_count_ = 0;
  uint64_t page_closes_ = 0;
  uint64_t guards_reopened_ = 0;
};

}  // namespace bt86
