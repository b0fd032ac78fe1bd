#include "shadow/shadow_mmu.h"

#include <algorithm>
#include <bit>

namespace bt86 {
namespace {

constexpr uint32_t kNoFrame = 0xFFFFFFFF;
constexpr uint32_t kPageShift = 12;
constexpr uint32_t kPagesPerRegion = 1024;
constexpr uint64_t kUnknownEntry = ~uint64_t{0};
// Per window: the budget counts each revoked page as a host mapping, and 16
// spaces of 2 windows at this bound stay well inside it.
constexpr size_t kMaxRevokedPages = 512;

int index_of(WindowKind w) {
  return static_cast<int>(w);
}

// The first entry at or after `from` whose bit in `bits` (one per entry of
// a table) is `value`, or kPagesPerRegion: whole words at a time, since a
// flush follows every invlpg and most tables have one entry written.
uint32_t next_entry(const std::array<uint64_t, 16>& bits, uint32_t from, bool value) {
  while (from < kPagesPerRegion) {
    uint64_t word = value ? bits[from / 64] : ~bits[from / 64];
    word &= ~uint64_t{0} << (from % 64);
    if (word != 0) return from / 64 * 64 + std::countr_zero(word);
    from = (from / 64 + 1) * 64;
  }
  return kPagesPerRegion;
}

template <typename T>
void erase_value(std::vector<T>& v, const T& value) {
  v.erase(std::remove(v.begin(), v.end(), value), v.end());
}

}  // namespace

ShadowAddressSpace::ShadowAddressSpace(const ShadowSpaceKey& key) : key_(key) {
  table_of_region_.fill(kNoFrame);
  directory_entry_.fill(kUnknownEntry);
}

ShadowMmu::ShadowMmu(GuestMemory& memory, const Options& options)
    : memory_(memory), options_(options), walker_(memory) {}

ShadowMmu::~ShadowMmu() = default;

PagingMode ShadowMmu::mode_of(const ShadowAddressSpace& space) const {
  PagingMode m;
  m.cr3 = space.key().cr3_frame << kPageShift;
  m.pse = space.key().pse;
  m.wp = space.key().wp;
  return m;
}

ShadowAddressSpace& ShadowMmu::activate(const PagingMode& mode) {
  return activate_key({mode.cr3 >> kPageShift, mode.pse, mode.wp, false});
}

ShadowAddressSpace& ShadowMmu::activate_identity() {
  return activate_key({0, false, false, true});
}

ShadowAddressSpace& ShadowMmu::activate_key(const ShadowSpaceKey& key) {
  for (auto it = spaces_.begin(); it != spaces_.end(); ++it) {
    if ((*it)->key() == key) {
      spaces_.splice(spaces_.begin(), spaces_, it);
      if (spaces_.front()->detached_) revalidate(*spaces_.front());
      return *spaces_.front();
    }
  }
  if (spaces_.size() >= options_.max_spaces) evict(*spaces_.back());
  spaces_.push_front(std::unique_ptr<ShadowAddressSpace>(new ShadowAddressSpace(key)));
  ++stats_.spaces_created;
  return *spaces_.front();
}

HostProtection ShadowMmu::protection_for(const PageTranslation& t, uint32_t frame) const {
  const bool traced = traced_.contains(frame);
  return t.writable && t.dirty && !traced ? HostProtection::kReadWrite : HostProtection::kRead;
}

HiddenFaultResult ShadowMmu::resolve_fault(ShadowAddressSpace& space, WindowKind window,
                                           uint32_t linear, bool write) {
  ++stats_.hidden_faults;
  if (space.key().identity) return resolve_identity_fault(space, window, linear, write);
  const PagingMode mode = mode_of(space);
  const PageAccessRequest request{write ? AccessType::kWrite : AccessType::kRead,
                                  window == WindowKind::kUser};
  // Probe first: a write to a traced frame must not set the dirty bit before
  // the emulated store has been checked and performed.
  const PageWalkResult probe = walker_.probe(mode, linear, request);
  if (!probe.ok()) {
    ++stats_.guest_page_faults;
    return {HiddenFaultResult::Kind::kGuestPageFault, probe.error_code, 0, 0};
  }
  const PageTranslation& p = *probe.translation;
  if (!memory_.contains(p.physical & ~0xFFFu, 4096)) {
    if (write || options_.unassigned_fd < 0) {
      return {HiddenFaultResult::Kind::kNotRam, 0, p.physical, 0};
    }
    const PageTranslation t = *walker_.translate(mode, linear, request).translation;
    note_tables(space, t);
    map_unassigned(space, window, linear >> kPageShift);
    return {};
  }
  const uint32_t frame = p.physical >> kPageShift;
  if (write) {
    auto traced = traced_.find(frame);
    if (traced != traced_.end()) {
      ++stats_.trace_writes;
      walker_.translate(mode, linear, request);  // A and D, as the store will happen.
      return {HiddenFaultResult::Kind::kTraceWrite, 0, p.physical, traced->second};
    }
  }
  const PageTranslation t = *walker_.translate(mode, linear, request).translation;
  note_tables(space, t);
  const HostProtection prot = protection_for(t, frame);
  const uint32_t linear_page = linear >> kPageShift;
  auto& mapped = space.mapped_[index_of(window)];
  if (auto it = mapped.find(linear_page); it != mapped.end()) {
    if (it->second.frame == frame) {
      // Present already: this fault upgrades read-only to read/write after
      // the walk set the dirty bit.
      space.window(window).protect(linear_page << kPageShift, 4096, prot);
      it->second.prot = prot;
      return {};
    }
    drop_pages(space, window, linear_page, 1);
  }
  const uint32_t pages = coalesce_forward(space, window, mode, t, prot);
  map_run(space, window, linear_page, frame, pages, prot);
  enforce_budget();
  return {};
}

// Paging off: the page is RAM or it is not; runs of untraced RAM pages are
// mapped read/write in one mmap, traced ones read-only one at a time.
HiddenFaultResult ShadowMmu::resolve_identity_fault(ShadowAddressSpace& space, WindowKind window,
                                                    uint32_t linear, bool write) {
  const uint32_t frame = linear >> kPageShift;
  if (!memory_.contains(uint64_t{frame} << kPageShift, 4096)) {
    if (write || options_.unassigned_fd < 0)
      return {HiddenFaultResult::Kind::kNotRam, 0, linear, 0};
    map_unassigned(space, window, frame);
    return {};
  }
  auto traced = traced_.find(frame);
  if (write && traced != traced_.end()) {
    ++stats_.trace_writes;
    return {HiddenFaultResult::Kind::kTraceWrite, 0, linear, traced->second};
  }
  auto& mapped = space.mapped_[index_of(window)];
  drop_pages(space, window, frame, 1);
  if (traced != traced_.end()) {
    map_run(space, window, frame, frame, 1, HostProtection::kRead);
    enforce_budget();
    return {};
  }
  uint32_t pages = 1;
  while (pages < options_.identity_run_pages) {
    const uint32_t next = frame + pages;
    if (!memory_.contains(uint64_t{next} << kPageShift, 4096) || mapped.contains(next) ||
        traced_.contains(next) || (next & (options_.identity_run_pages - 1)) == 0) {
      break;
    }
    ++pages;
  }
  map_run(space, window, frame, frame, pages, HostProtection::kReadWrite);
  enforce_budget();
  return {};
}

void ShadowMmu::map_unassigned(ShadowAddressSpace& space, WindowKind window, uint32_t linear_page) {
  auto& mapped = space.mapped_[index_of(window)];
  drop_pages(space, window, linear_page, 1);
  space.revoked_[index_of(window)].erase(linear_page);
  space.window(window).map(linear_page << kPageShift, options_.unassigned_fd, 0, 4096,
                           HostProtection::kRead);
  ++stats_.host_mappings_created;
  mapped[linear_page] = {ShadowAddressSpace::kUnassignedFrame, HostProtection::kRead, linear_page};
  ++space.mapped_in_region_[linear_page / kPagesPerRegion];
  frame_uses_[ShadowAddressSpace::kUnassignedFrame].push_back({&space, window, linear_page});
  enforce_budget();
}

uint32_t ShadowMmu::coalesce_forward(ShadowAddressSpace& space, WindowKind window,
                                     const PagingMode& mode, const PageTranslation& t,
                                     HostProtection prot) const {
  // Only pages the guest has accessed already (A=1, and D=1 for a writable
  // mapping) are mapped ahead of time; others must fault so their bits get set.
  const PageAccessRequest request{AccessType::kRead, window == WindowKind::kUser};
  const auto& mapped = space.mapped_[index_of(window)];
  const uint32_t first = t.physical >> kPageShift;
  const uint32_t linear_page = (t.page_linear + (t.physical - t.page_physical)) >> kPageShift;
  uint32_t pages = 1;
  while (pages < options_.coalesce_pages) {
    const uint32_t next_linear = (linear_page + pages) << kPageShift;
    if (next_linear == 0 || mapped.contains(linear_page + pages)) break;
    const PageWalkResult r = walker_.probe(mode, next_linear, request);
    if (!r.ok()) break;
    const PageTranslation& n = *r.translation;
    const uint32_t frame = n.physical >> kPageShift;
    if (frame != first + pages || !memory_.contains(n.physical, 4096)) break;
    if (!n.accessed) break;
    if (protection_for(n, frame) != prot || n.user != t.user) break;
    // A neighbour reached through another page table would not be covered
    // by the table this fault traces.
    if (n.pte_address &&
        (!t.pte_address || (*n.pte_address >> kPageShift) != (*t.pte_address >> kPageShift))) {
      break;
    }
    ++pages;
  }
  return pages;
}

void ShadowMmu::map_run(ShadowAddressSpace& space, WindowKind window, uint32_t linear_page,
                        uint32_t frame, uint32_t pages, HostProtection prot) {
  auto& revoked = space.revoked_[index_of(window)];
  bool revivable = true;
  for (uint32_t i = 0; i < pages; ++i) {
    auto r = revoked.find(linear_page + i);
    if (r == revoked.end()) {
      revivable = false;
      continue;
    }
    revivable = revivable && r->second == frame + i;
    revoked.erase(r);
  }
  const uint64_t bytes = uint64_t{pages} << kPageShift;
  if (revivable) {
    space.window(window).revive(linear_page << kPageShift, bytes, prot);
    stats_.pages_revived += pages;
  } else {
    space.window(window).map(linear_page << kPageShift, memory_.fd(),
                             static_cast<uint64_t>(frame) << kPageShift, bytes, prot);
    ++stats_.host_mappings_created;
  }
  auto& mapped = space.mapped_[index_of(window)];
  for (uint32_t i = 0; i < pages; ++i) {
    mapped[linear_page + i] = {frame + i, prot, linear_page};
    ++space.mapped_in_region_[(linear_page + i) / kPagesPerRegion];
    frame_uses_[frame + i].push_back({&space, window, linear_page + i});
  }
  stats_.pages_mapped += pages;
}

// Called before a mapping in t's region is added. The first mapping of a
// region records the directory entry after the walk. Later walks may find
// it with A or D newly set, by a walk of ours or a guest store not yet
// flushed: a mapping derived before is still one the new value allows, so
// the record follows. Any other difference means the region's mappings
// derive from different values, and only a drop at the flush is right.
void ShadowMmu::note_directory_entry(ShadowAddressSpace& space, const PageTranslation& t) {
  const uint32_t region = t.page_linear >> 22;
  const uint32_t now = memory_.read_u32(t.pde_address);
  uint64_t& recorded = space.directory_entry_[region];
  if (space.mapped_in_region_[region] == 0) {
    recorded = now;
    return;
  }
  if (recorded == now || recorded == kUnknownEntry) return;
  constexpr uint32_t kAd = pte::kAccessed | pte::kDirty;
  const uint32_t before = static_cast<uint32_t>(recorded);
  const bool only_gained_ad =
      (now & ~kAd) == (before & ~kAd) && (now & before & kAd) == (before & kAd);
  recorded = only_gained_ad ? now : kUnknownEntry;
}

void ShadowMmu::trace_directory(ShadowAddressSpace& space) {
  const uint32_t directory = space.key().cr3_frame;
  const TableUse dir_use{&space, true, 0};
  auto& dir_uses = table_uses_[directory];
  if (std::find(dir_uses.begin(), dir_uses.end(), dir_use) == dir_uses.end()) {
    dir_uses.push_back(dir_use);
    trace_frame(directory, TraceKind::kPageTable);
  }
}

void ShadowMmu::note_tables(ShadowAddressSpace& space, const PageTranslation& t) {
  note_directory_entry(space, t);
  trace_directory(space);
  if (!t.pte_address) return;
  const uint32_t region = t.page_linear >> 22;
  const uint32_t table = *t.pte_address >> kPageShift;
  if (space.table_of_region_[region] == table) return;
  forget_region_table(space, region);
  space.table_of_region_[region] = table;
  table_uses_[table].push_back({&space, false, region << 22});
  trace_frame(table, TraceKind::kPageTable);
}

void ShadowMmu::forget_table_use(uint32_t frame, const TableUse& use) {
  auto it = table_uses_.find(frame);
  if (it == table_uses_.end()) return;
  erase_value(it->second, use);
  if (it->second.empty()) {
    table_uses_.erase(it);
    untrace_frame(frame, TraceKind::kPageTable);
  }
}

void ShadowMmu::forget_region_table(ShadowAddressSpace& space, uint32_t region) {
  const uint32_t table = space.table_of_region_[region];
  if (table == kNoFrame) return;
  space.table_of_region_[region] = kNoFrame;
  forget_table_use(table, {&space, false, region << 22});
}

void ShadowMmu::forget_frame_use(uint32_t frame, const FrameUse& use) {
  auto uses = frame_uses_.find(frame);
  if (uses == frame_uses_.end()) return;
  erase_value(uses->second, use);
  if (uses->second.empty()) frame_uses_.erase(uses);
}

void ShadowMmu::drop_pages(ShadowAddressSpace& space, WindowKind window, uint32_t first_page,
                           uint32_t page_count) {
  auto& mapped = space.mapped_[index_of(window)];
  auto& revoked = space.revoked_[index_of(window)];
  auto it = mapped.lower_bound(first_page);
  bool emptied_region = false;
  std::vector<uint32_t> emptied_while_detached;
  // One host call per run of adjacent mapped pages: a guest clearing a
  // table of entries (exit, exec) would otherwise pay a system call each.
  while (it != mapped.end() && it->first - first_page < page_count) {
    const uint32_t run_first = it->first;
    uint32_t run_pages = 0;
    while (it != mapped.end() && it->first == run_first + run_pages &&
           it->first - first_page < page_count) {
      forget_frame_use(it->second.frame, {&space, window, it->first});
      revoked[it->first] = it->second.frame;
      const uint32_t region = it->first / kPagesPerRegion;
      if (--space.mapped_in_region_[region] == 0) {
        emptied_region = true;
        if (space.detached_) emptied_while_detached.push_back(region);
      }
      it = mapped.erase(it);
      ++run_pages;
    }
    // Small runs are revoked (a guest tends to map the same frame there
    // again); a large one is a region going away, and the revoked set is
    // bounded because every page in it may be a host mapping.
    const uint64_t bytes = uint64_t{run_pages} << kPageShift;
    if (run_pages <= options_.coalesce_pages && revoked.size() <= kMaxRevokedPages) {
      space.window(window).revoke(run_first << kPageShift, bytes);
      stats_.mappings_revoked += run_pages;
    } else {
      for (uint32_t page = run_first; page < run_first + run_pages; ++page) revoked.erase(page);
      space.window(window).unmap(run_first << kPageShift, bytes);
    }
    stats_.mappings_dropped += run_pages;
  }
  // After the walk over mapped: releasing untraces frames, which drops
  // their own read-only mappings, possibly in this very map. A detached
  // space keeps no table for a region without mappings (see detach()).
  for (uint32_t region : emptied_while_detached) forget_region_table(space, region);
  if (emptied_region) release_if_unused(space);
}

// A region that lost its last mapping keeps its table, traced, as long as
// the space maps anything else: the directory is then traced as well, so
// the entry pointing at the table cannot change unseen, and a table emptied
// and refilled over and over (Linux's text_poke() maps one page in a private
// address space for every patch) is not untraced and traced again each
// time, which cost a hidden fault, a protect and an unmap per cycle. A
// space that maps nothing (a process that exited) releases its tables and
// its directory, so the guest reusing those frames takes no trace faults.
void ShadowMmu::release_if_unused(ShadowAddressSpace& space) {
  if (space.key().identity || !space.mapped_[0].empty() || !space.mapped_[1].empty()) return;
  release_tables(space);
}

void ShadowMmu::release_tables(ShadowAddressSpace& space) {
  for (uint32_t region = 0; region < kPagesPerRegion; ++region) forget_region_table(space, region);
  forget_table_use(space.key().cr3_frame, {&space, true, 0});
}

void ShadowMmu::drop_region(ShadowAddressSpace& space, uint32_t region) {
  drop_range(space, region * kPagesPerRegion, kPagesPerRegion);
  forget_region_table(space, region);
}

// The store itself was done and will be noted for the active space; the
// inactive ones stop tracing the frame, so the rest of the guest's stores
// to it (clearing it for reuse, filling a child's entries) run untraced.
void ShadowMmu::detach_inactive_spaces_of_directory(uint32_t frame) {
  auto uses = table_uses_.find(frame);
  if (uses == table_uses_.end()) return;
  std::vector<ShadowAddressSpace*> inactive;
  for (const TableUse& use : uses->second) {
    if (use.directory && use.space != spaces_.front().get()) inactive.push_back(use.space);
  }
  for (ShadowAddressSpace* space : inactive) detach(*space);
}

// Tables of regions that map nothing are released now: the directory may
// point elsewhere by the time the space returns. Tables of regions that
// map something stay traced, so the mappings stay true to them while the
// space waits.
void ShadowMmu::detach(ShadowAddressSpace& space) {
  space.detached_ = true;
  ++stats_.spaces_detached;
  for (uint32_t region = 0; region < kPagesPerRegion; ++region) {
    if (space.mapped_in_region_[region] == 0) forget_region_table(space, region);
  }
  forget_table_use(space.key().cr3_frame, {&space, true, 0});
}

// Whether the space's directory entry for region holds the value its
// mappings derive from (note_directory_entry).
bool ShadowMmu::directory_entry_unchanged(const ShadowAddressSpace& space, uint32_t region) const {
  const uint64_t directory = uint64_t{space.key().cr3_frame} << kPageShift;
  return space.directory_entry_[region] == memory_.read_u32(directory + 4 * region);
}

// Activation after a detach, which is a TLB flush for the space: a region
// whose directory entry is the one its mappings derive from keeps them
// (its table, if any, was traced all along); any other region is dropped.
void ShadowMmu::revalidate(ShadowAddressSpace& space) {
  space.detached_ = false;
  for (uint32_t region = 0; region < kPagesPerRegion; ++region) {
    if (space.mapped_in_region_[region] == 0) continue;
    if (directory_entry_unchanged(space, region)) {
      ++stats_.regions_kept_on_return;
      continue;
    }
    drop_region(space, region);
  }
  if (!space.mapped_[0].empty() || !space.mapped_[1].empty()) trace_directory(space);
}

// A guest that unmaps one page of a run we mapped in one call is usually
// about to unmap its neighbours as well, one invlpg each (Linux's
// early_memremap() scans the BIOS area in 16-byte steps, remapping up to 16
// pages per step): dropping the whole run now is one host call instead of
// one per page. Dropping more than asked is always safe; a dropped page is
// faulted back in.
void ShadowMmu::drop_range(ShadowAddressSpace& space, uint32_t first_page, uint32_t page_count) {
  if (page_count == 0) return;
  for (WindowKind w : {WindowKind::kSupervisor, WindowKind::kUser}) {
    drop_runs(space, w, first_page, page_count);
  }
}

void ShadowMmu::drop_runs(ShadowAddressSpace& space, WindowKind window, uint32_t first_page,
                          uint32_t page_count) {
  const auto& mapped = space.mapped_[index_of(window)];
  uint64_t begin = first_page;
  uint64_t end = uint64_t{first_page} + page_count;
  if (auto it = mapped.find(first_page); it != mapped.end()) begin = it->second.run_first;
  if (auto it = mapped.find(static_cast<uint32_t>(end - 1)); it != mapped.end()) {
    const uint32_t run = it->second.run_first;
    for (++it; it != mapped.end() && it->first == end && it->second.run_first == run; ++it) ++end;
  }
  drop_pages(space, window, static_cast<uint32_t>(begin), static_cast<uint32_t>(end - begin));
}

// Linux rewrites entries in place all the time without changing the frame:
// fork write-protects the parent's private pages, a write fault on a page
// left with one owner makes it writable again, reclaim clears D. Dropping
// such a mapping cost an mprotect now and a hidden fault (a host signal)
// plus another mprotect at the next touch. Keeping it is what a TLB refilled
// from the new entry right after the flush would hold, so it is as correct
// as the drop: the frame is the same, the entry's A bit is set (otherwise
// the next access must fault to set it), and the protection is recomputed
// from the entry as a hidden fault would (invariant 2).
void ShadowMmu::refresh_range(ShadowAddressSpace& space, uint32_t first_page, uint32_t page_count) {
  for (WindowKind w : {WindowKind::kSupervisor, WindowKind::kUser}) {
    auto& mapped = space.mapped_[index_of(w)];
    std::vector<uint32_t> stale;
    for (auto it = mapped.lower_bound(first_page);
         it != mapped.end() && it->first - first_page < page_count; ++it) {
      const std::optional<HostProtection> prot = protection_now(space, w, it->first, it->second);
      if (!prot) {
        stale.push_back(it->first);
        continue;
      }
      if (*prot == it->second.prot) {
        ++stats_.table_rewrites_kept;
        continue;
      }
      space.window(w).protect(it->first << kPageShift, 4096, *prot);
      it->second.prot = *prot;
      ++stats_.table_rewrites_reprotected;
    }
    for (uint32_t page : stale) drop_runs(space, w, page, 1);
  }
}

// A mapping the guest's tables still give, now: the same frame, through
// the table its region has traced (or a 4 MiB page), with A set in the
// final entry. Then the protection a hidden fault would give it now.
std::optional<HostProtection> ShadowMmu::protection_now(
    const ShadowAddressSpace& space, WindowKind window, uint32_t linear_page,
    const ShadowAddressSpace::Mapping& m) const {
  if (space.key().identity) return std::nullopt;
  const PageWalkResult r = walker_.probe(mode_of(space), linear_page << kPageShift,
                                         {AccessType::kRead, window == WindowKind::kUser});
  if (!r.ok() || r.translation->physical >> kPageShift != m.frame) return std::nullopt;
  const PageTranslation& t = *r.translation;
  const uint32_t region = linear_page / kPagesPerRegion;
  if (t.pte_address && *t.pte_address >> kPageShift != space.table_of_region_[region]) {
    return std::nullopt;
  }
  const uint32_t final_entry = t.pte_address ? *t.pte_address : t.pde_address;
  if (!(memory_.read_u32(final_entry) & pte::kAccessed)) return std::nullopt;
  return protection_for(t, m.frame);
}

void ShadowMmu::invalidate_page(ShadowAddressSpace& space, uint32_t linear) {
  const uint32_t page = linear >> kPageShift;
  std::array<bool, 2> was_mapped{};
  for (WindowKind w : {WindowKind::kSupervisor, WindowKind::kUser}) {
    was_mapped[index_of(w)] = space.mapped_[index_of(w)].contains(page);
  }
  flush_table_writes();
  refresh_range(space, page, 1);
  revive_granted(space, page);
  for (WindowKind w : {WindowKind::kSupervisor, WindowKind::kUser}) {
    if (was_mapped[index_of(w)] && space.revoked_[index_of(w)].contains(page)) {
      space.revoked_by_invlpg_[index_of(w)] = page;
    }
  }
}

// Linux maps a frame at a fixed slot, flushes, reads, unmaps and flushes
// again, over and over (early_memremap while scanning for an MP table:
// about 4,200 times in one boot). The unmap revokes the page; giving it back at
// the invlpg that follows the next map costs the mprotect the hidden fault
// would make, without the signal. Only the page the last invlpg revoked
// while in use: reviving every revoked page whose entry came back cost an
// mprotect for each of the slots early_memremap maps and nobody reads.
// And only where that fault would map the same frame now: A set at both
// levels, so the walk has nothing to set.
void ShadowMmu::revive_granted(ShadowAddressSpace& space, uint32_t linear_page) {
  if (space.key().identity) return;
  for (WindowKind w : {WindowKind::kSupervisor, WindowKind::kUser}) {
    if (space.revoked_by_invlpg_[index_of(w)] != linear_page) continue;
    space.revoked_by_invlpg_[index_of(w)] = ShadowAddressSpace::kNoPage;
    const auto& revoked = space.revoked_[index_of(w)];
    const auto r = revoked.find(linear_page);
    if (r == revoked.end()) continue;
    const uint32_t frame = r->second;
    const PageWalkResult probe = walker_.probe(mode_of(space), linear_page << kPageShift,
                                               {AccessType::kRead, w == WindowKind::kUser});
    if (!probe.ok()) continue;
    const PageTranslation& t = *probe.translation;
    if (t.physical >> kPageShift != frame ||
        !memory_.contains(uint64_t{frame} << kPageShift, 4096)) {
      continue;
    }
    if (!t.accessed) continue;
    note_tables(space, t);
    map_run(space, w, linear_page, frame, 1, protection_for(t, frame));
    ++stats_.pages_revived_at_invlpg;
    enforce_budget();
  }
}

TraceKinds ShadowMmu::note_guest_write(uint32_t physical, uint32_t length) {
  TraceKinds touched = 0;
  if (length == 0) return touched;
  const uint32_t last = physical + length - 1;
  for (uint32_t frame = physical >> kPageShift; frame <= last >> kPageShift; ++frame) {
    auto traced = traced_.find(frame);
    if (traced == traced_.end()) continue;
    touched |= traced->second;
    detach_inactive_spaces_of_directory(frame);
    if (!table_uses_.contains(frame)) continue;
    const uint32_t frame_base = frame << kPageShift;
    const uint32_t first_entry = (std::max(physical, frame_base) - frame_base) / 4;
    const uint32_t last_entry = (std::min(last, frame_base + 4095) - frame_base) / 4;
    EntrySet& written = pending_table_writes_[frame];
    for (uint32_t e = first_entry; e <= last_entry; ++e) written[e / 64] |= uint64_t{1} << (e % 64);
  }
  return touched;
}

void ShadowMmu::flush_table_writes() {
  if (pending_table_writes_.empty()) return;
  for (const auto& [frame, written] : pending_table_writes_) {
    for (uint32_t e = next_entry(written, 0, true); e < kPagesPerRegion;) {
      const uint32_t end = next_entry(written, e, false);
      drop_derived(frame, e, end - e);
      e = next_entry(written, end, true);
    }
  }
  pending_table_writes_.clear();
}

void ShadowMmu::drop_derived(uint32_t frame, uint32_t first_entry, uint32_t entry_count) {
  auto uses = table_uses_.find(frame);
  if (uses == table_uses_.end()) return;
  // Copy: dropping a directory region may forget table uses of this frame.
  const std::vector<TableUse> uses_now = uses->second;
  for (const TableUse& use : uses_now) {
    if (use.directory) {
      for (uint32_t region = first_entry; region < first_entry + entry_count; ++region) {
        if (use.space->mapped_in_region_[region] != 0 &&
            directory_entry_unchanged(*use.space, region)) {
          ++stats_.directory_rewrites_kept;
          continue;
        }
        drop_region(*use.space, region);
      }
    } else {
      refresh_range(*use.space, (use.region_base >> kPageShift) + first_entry, entry_count);
    }
  }
}

void ShadowMmu::trace_frame(uint32_t frame, TraceKind kind) {
  TraceKinds& kinds = traced_[frame];
  const bool was_traced = kinds != 0;
  kinds |= static_cast<TraceKinds>(kind);
  if (was_traced) return;
  auto uses = frame_uses_.find(frame);
  if (uses == frame_uses_.end()) return;
  for (const FrameUse& use : uses->second) {
    auto& mapping = use.space->mapped_[index_of(use.window)][use.linear_page];
    if (mapping.prot == HostProtection::kReadWrite) {
      use.space->window(use.window)
          .protect(use.linear_page << kPageShift, 4096, HostProtection::kRead);
      mapping.prot = HostProtection::kRead;
    }
  }
}

void ShadowMmu::untrace_frame(uint32_t frame, TraceKind kind) {
  auto it = traced_.find(frame);
  if (it == traced_.end()) return;
  it->second &= static_cast<TraceKinds>(~static_cast<uint8_t>(kind));
  if (it->second != 0) return;
  traced_.erase(it);
  // Its mappings are read-only because of the trace: each gets what the
  // guest grants now, as a hidden fault would. Linux hands a released page
  // table straight back to its allocator, and dropping the mappings cost a
  // hidden fault in every space that touched the frame as data afterwards.
  // A released page table's pages stay read-only where the guest grants
  // more, though: it is written, if at all, in one of the spaces mapping
  // it, and an mprotect in each (38 per fork+exec) cost more than a write
  // fault in one. A code page is written again where it was written (data
  // next to code), so it gets write access at once.
  auto uses = frame_uses_.find(frame);
  if (uses == frame_uses_.end()) return;
  const std::vector<FrameUse> uses_now = uses->second;
  for (const FrameUse& use : uses_now) {
    auto& mapped = use.space->mapped_[index_of(use.window)];
    auto m = mapped.find(use.linear_page);
    const std::optional<HostProtection> prot =
        m == mapped.end() ? std::nullopt
                          : protection_now(*use.space, use.window, use.linear_page, m->second);
    if (!prot) {
      drop_pages(*use.space, use.window, use.linear_page, 1);
      continue;
    }
    ++stats_.untraced_pages_kept;
    if (*prot == m->second.prot) continue;
    if (kind == TraceKind::kPageTable && *prot == HostProtection::kReadWrite &&
        m->second.prot == HostProtection::kRead) {
      continue;
    }
    use.space->window(use.window).protect(use.linear_page << kPageShift, 4096, *prot);
    m->second.prot = *prot;
  }
}

TraceKinds ShadowMmu::trace_kinds(uint32_t frame) const {
  auto it = traced_.find(frame);
  return it == traced_.end() ? 0 : it->second;
}

void ShadowMmu::clear(ShadowAddressSpace& space) {
  for (WindowKind w : {WindowKind::kSupervisor, WindowKind::kUser}) {
    for (const auto& [page, mapping] : space.mapped_[index_of(w)]) {
      forget_frame_use(mapping.frame, {&space, w, page});
    }
    stats_.mappings_dropped += space.mapped_[index_of(w)].size();
    space.mapped_[index_of(w)].clear();
    space.revoked_[index_of(w)].clear();
    space.window(w).unmap_all();
  }
  space.mapped_in_region_.fill(0);
  release_tables(space);
  space.detached_ = false;
}

void ShadowMmu::evict(ShadowAddressSpace& space) {
  clear(space);
  spaces_.remove_if([&](const auto& p) { return p.get() == &space; });
  ++stats_.spaces_evicted;
}

void ShadowMmu::flush_all() {
  pending_table_writes_.clear();
  while (!spaces_.empty()) evict(*spaces_.back());
}

uint64_t ShadowMmu::host_mapping_count() const {
  uint64_t n = 0;
  for (const auto& s : spaces_) {
    n += s->window(WindowKind::kSupervisor).mapping_count() +
         s->window(WindowKind::kUser).mapping_count() + s->revoked_[0].size() +
         s->revoked_[1].size();
  }
  return n;
}

void ShadowMmu::enforce_budget() {
  // Evict the coldest spaces first, but never the one just used.
  while (host_mapping_count() > options_.max_host_mappings && spaces_.size() > 1) {
    evict(*spaces_.back());
  }
  if (host_mapping_count() > options_.max_host_mappings) clear(*spaces_.front());
}

}  // namespace bt86
