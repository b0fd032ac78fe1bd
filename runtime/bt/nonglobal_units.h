// The entry guards of non-global units, opened and closed by code page.
//
// A non-global unit is right only in an address space that maps its code
// pages to the frames it was translated from. The dispatcher walks the
// guest tables before every entry, but links from units on other pages and
// lookup entries skip that walk, so they enter a non-global unit through
// its entry guard (TranslationUnit::guarded_entry), which is open only
// while the unit is known valid in the current space.
//
// Units translated from one page are grouped by (linear page, frame,
// privilege): they are valid exactly when that page maps to that frame for
// that privilege, so the group's guards open and close together through
// the group's guard chunks, one store per chunk of units
// (TranslationCache::join_guard_chunk). A unit that spans two pages has a
// chunk of its own. Closing every guard at each address-space switch and
// reopening them unit by unit cost a shell that forks and execs about
// 4,000 guard stores and 135 trips to the dispatcher per fork+exec.
//
// A guest TLB flush (a CR3 write) walks the page of each open group once in
// the new tables (revalidate) and keeps it open if it maps the same frame
// there: a shell's fork, exec and exit switch between spaces that map its
// text to the same page-cache frames. A group whose page is not mapped in
// the new space is closed and parked, and reopened at a later flush that
// finds the frame back (the shell's space returning after its child's).
// The first entry through a closed guard leaves the cache (a kGuard exit),
// and the runtime opens the unit's group if the unit is valid then.
// A group whose page revalidate finds global (G=1 with CR4.PGE) is promoted:
// its units become global, as a TLB would keep that page across switches.
// Linux's text runs from non-global early tables before the kernel maps it
// with global 4 MiB pages, and its units would otherwise be walked at every
// CR3 write of the run.
//
//   NonGlobalUnits units(cache);
//   units.open(u);              // u is valid here and about to be linked to
//   units.revalidate(page_now); // CR3 write: page_now(page, user) in the new tables
//   units.close_page(page);     // invlpg
#pragma once

#include <absl/container/flat_hash_map.h>

#include <cstdint>
#include <vector>

#include "translator/translation_cache.h"

namespace bt86 {

class NonGlobalUnits {
 public:
  // The frame revalidate's page_now gives for a page that does not map to
  // a frame that may be executed now.
  static constexpr uint32_t kNoFrame = 0xFFFFFFFF;
  // What a page maps to after a TLB flush, for its privilege.
  struct PageNow {
    uint32_t frame = kNoFrame;
    bool global = false;
  };

  explicit NonGlobalUnits(TranslationCache& cache) : cache_(cache) {}

  // Opens the guard of a unit just found valid in the current space, and
  // with it those of its group. False if code memory has no room for the
  // guard: the caller must then not enter the unit through it.
  bool open(TranslationUnit& unit);
  // Closes every open guard.
  void close_all();
  // After a TLB flush: keeps the groups whose page page_now(linear_page,
  // user) says still maps to their frame (promoting those it maps global),
  // closes the rest, and reopens parked groups whose frame is back.
  template <typename PageNowOf>
  void revalidate(PageNowOf&& page_now) {
    forget_if_flushed();
    for (size_t i = 0; i < open_.size();) {
      Group& g = groups_.at(open_[i]);
      const PageNow now = page_now(g.linear_page, g.user);
      if (now.frame == g.frame && now.global) {
        promote(open_[i]);
        continue;
      }
      if (now.frame == g.frame) {
        ++pages_kept_;
        ++i;
        continue;
      }
      close_group(open_[i], /*park=*/now.frame == kNoFrame);
    }
    close_spanning();
    for (size_t i = 0; i < parked_.size();) {
      Group& g = groups_.at(parked_[i]);
      const uint32_t frame = g.open ? kNoFrame : page_now(g.linear_page, g.user).frame;
      if (frame == g.frame) {
        open_group(parked_[i]);
        ++pages_reopened_;
      } else if (!g.open && frame == kNoFrame && ++g.flushes_parked <= kParkedFlushes) {
        ++i;
        continue;
      }
      g.parked = false;
      parked_[i] = parked_.back();
      parked_.pop_back();
    }
  }
  // Closes the guards of units translated from this linear page (invlpg).
  void close_page(uint32_t linear_page);

  // Code pages (groups) closed by invlpg, reopened at a flush because their
  // frame came back, kept open across a flush, and promoted to global.
  uint64_t page_closes() const { return page_closes_; }
  uint64_t pages_reopened() const { return pages_reopened_; }
  uint64_t pages_kept() const { return pages_kept_; }
  uint64_t pages_promoted() const { return pages_promoted_; }

 private:
  using GroupKey = uint64_t;
  struct Group {
    uint32_t linear_page;
    uint32_t frame;
    bool user;
    bool open = false;
    bool parked = false;
    uint32_t flushes_parked = 0;
    size_t open_index = 0;  // In open_, while open.
    std::vector<uint32_t> chunks;
  };
  // How many TLB flushes a parked group waits for its frame to come back.
  static constexpr uint32_t kParkedFlushes = 8;
  // Units per chunk: a page of user code holds about 30 live units.
  static constexpr uint32_t kChunkCapacity = 32;

  static GroupKey key_of(uint32_t linear_page, uint32_t frame, bool user) {
    return uint64_t{linear_page} << 33 | uint64_t{frame} << 1 | (user ? 1 : 0);
  }
  static uint64_t page_of(uint32_t linear_page, bool user) {
    return uint64_t{linear_page} << 1 | (user ? 1 : 0);
  }
  void forget_if_flushed();
  bool open_spanning(TranslationUnit& unit);
  void open_group(GroupKey key);
  // Takes an open group off open_ and open_by_page_; its chunks stay as
  // they are.
  void drop_from_open(Group& g);
  // Closes the group's chunks; park: remember it for revalidate().
  void close_group(GroupKey key, bool park);
  void close_spanning();
  // Makes the units of an open group global and forgets the group. Its
  // chunks stay open for the links and lookup entries that still enter
  // through the guards; those go at the next detach or unlink_all.
  void promote(GroupKey key);

  TranslationCache& cache_;
  // All valid while the cache's flush count is flush_count_: a flush frees
  // the units and their chunks.
  absl::flat_hash_map<GroupKey, Group> groups_;
  std::vector<GroupKey> open_;
  // (linear page, privilege) -> the open group of that page.
  absl::flat_hash_map<uint64_t, GroupKey> open_by_page_;
  std::vector<GroupKey> parked_;
  // Open units translated from two pages: rare, and closed at every TLB flush.
  std::vector<TranslationUnit*> spanning_;  // Each with a chunk of its own.
  uint64_t flush_count_ = 0;
  uint64_t page_closes_ = 0;
  uint64_t pages_reopened_ = 0;
  uint64_t pages_promoted_ = 0;
  uint64_t pages_kept_ = 0;
};

}  // namespace bt86
