// The shadow MMU: guest page tables realised as host mappings.
//
// For each cached guest address space (keyed by CR3 and the paging-mode bits
// that change translations) the MMU owns two HostWindows: the supervisor
// window holds every page the guest's supervisor may touch, the user window
// only U=1 pages, each with the permissions of that privilege. Windows are
// filled lazily: the first touch of a page is a host fault that the runtime
// hands to resolve_fault() (a hidden page fault), which walks the guest
// tables, sets the guest's accessed/dirty bits, and maps the page — together
// with its already-accessed, physically contiguous neighbours in one mmap.
//
// Invariants (docs/architecture.md repeats them):
// 1. A window never grants more than the guest's tables did at the last TLB
//    flush for its privilege: every mapping is derived from a successful
//    walk, and every frame that served as a page directory or page table for
//    a mapping is traced. A guest store to an entry is recorded
//    (note_guest_write) and the mappings derived from it are checked at the
//    guest's next TLB flush (flush_table_writes: invlpg, CR3 write, paging
//    mode change), which is when hardware guarantees the store is seen: a
//    page whose entry still maps the same frame with A set is kept and
//    reprotected (refresh_range), any other is dropped. Until then a stale
//    mapping is what a TLB entry would be. A directory entry
//    that holds, at the flush, the very value its region's mappings derive
//    from changed nothing, and the region stays (Linux clears a recycled
//    directory page and copies the kernel's entries back into it on every
//    fork). Conversely, a frame is traced as a table only while a space
//    uses it: a table is released when its directory entry changes or its
//    space maps nothing any more (a process that exited), so the guest
//    reusing the frames for data or for a child's tables takes no trace
//    faults; the pages that mapped such a frame read-only for the trace
//    get what their entries grant now (protection_now) rather than a drop
//    and a hidden fault each. A table whose region merely emptied stays
//    (release_if_unused).
//    A store to the directory of a space that is not active detaches the
//    space instead: its directory is no longer traced, and its mappings are
//    checked region by region against the directory when it is activated
//    again (revalidate). Linux frees a process's directory on exit and
//    reuses the frame for anything, often a child's page table; when the
//    frame is a directory again, its kernel entries are back, and so are
//    the kernel mappings derived from them, without a hidden fault each.
// 2. A page is mapped writable only if its dirty bit is set in the guest
//    entry (so the first write faults and sets D) and its frame is not traced.
// 3. The reverse map knows every (space, window, linear page) a frame is
//    mapped at, so tracing or a guest write can reach all of them.
// 4. Host mappings stay under a budget below vm.max_map_count: past it, or
//    past max_spaces, whole spaces are evicted (least recently activated).
//
//   ShadowMmu mmu(ram, {});
//   ShadowAddressSpace& as = mmu.activate(mode);        // GS base = as.window(...).base()
//   auto r = mmu.resolve_fault(as, WindowKind::kSupervisor, linear, /*write=*/true);
#pragma once

#include <array>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include "monitor/guest_memory.h"
#include "shadow/guest_page_walker.h"
#include "shadow/host_window.h"
#include "shadow/trace_kind.h"

namespace bt86 {

enum class WindowKind : uint8_t { kSupervisor = 0, kUser = 1 };

struct ShadowSpaceKey {
  uint32_t cr3_frame = 0;
  bool pse = false;
  bool wp = false;
  bool identity = false;  // Paging disabled: linear == physical, all RAM read/write.
  friend bool operator==(const ShadowSpaceKey&, const ShadowSpaceKey&) = default;
};

class ShadowAddressSpace {
 public:
  // Mapping::frame of a page backed by the unassigned page, not RAM.
  static constexpr uint32_t kUnassignedFrame = 0xFFFFFFFF;

  const ShadowSpaceKey& key() const { return key_; }
  HostWindow& window(WindowKind w) { return windows_[static_cast<int>(w)]; }
  const HostWindow& window(WindowKind w) const { return windows_[static_cast<int>(w)]; }

  struct Mapping {
    uint32_t frame;  // Guest-physical page frame number.
    HostProtection prot;
    // The first linear page of the run mapped with it in one host call.
    uint32_t run_first;
  };
  // Linear page number -> what the window maps there.
  const std::map<uint32_t, Mapping>& mappings(WindowKind w) const {
    return mapped_[static_cast<int>(w)];
  }

 private:
  friend class ShadowMmu;
  explicit ShadowAddressSpace(const ShadowSpaceKey& key);

  ShadowSpaceKey key_;
  std::array<HostWindow, 2> windows_;
  std::array<std::map<uint32_t, Mapping>, 2> mapped_;
  // Pages dropped by revoking them (HostWindow::revoke): linear page -> the
  // frame still behind it. Each may be a host mapping of its own, so the
  // budget counts them.
  std::array<std::unordered_map<uint32_t, uint32_t>, 2> revoked_;
  // The last page an invlpg revoked while it was in use, per window: the
  // one page worth reviving at the next invlpg of it (revive_granted).
  static constexpr uint32_t kNoPage = 0xFFFFFFFF;
  std::array<uint32_t, 2> revoked_by_invlpg_{kNoPage, kNoPage};
  // Page-table frame serving each 4 MiB region (kNoFrame if none recorded).
  std::array<uint32_t, 1024> table_of_region_;
  // The directory entry each region's mappings derive from, or kUnknownEntry
  // (ShadowMmu::note_directory_entry).
  std::array<uint64_t, 1024> directory_entry_;
  // Pages mapped in each 4 MiB region, both windows together.
  std::array<uint16_t, 1024> mapped_in_region_{};
  // The directory was written while the space was inactive and is not
  // traced: activation must check every region against it first.
  bool detached_ = false;
};

struct HiddenFaultResult {
  enum class Kind {
    kMapped,          // Resume: the access will now succeed.
    kGuestPageFault,  // Deliver #PF with error_code and CR2 = the linear address.
    kTraceWrite,      // A write to a traced frame: emulate it, then note_guest_write().
    kNotRam,          // The guest maps a physical address outside RAM (MMIO).
                      // Reads are mapped to Options::unassigned_fd when set.
  };
  Kind kind = Kind::kMapped;
  uint32_t error_code = 0;
  uint32_t physical = 0;
  TraceKinds trace_kinds = 0;
};

struct ShadowMmuStats {
  uint64_t hidden_faults = 0;
  uint64_t pages_mapped = 0;
  uint64_t host_mappings_created = 0;
  uint64_t guest_page_faults = 0;
  uint64_t trace_writes = 0;
  uint64_t mappings_dropped = 0;
  // Of the pages dropped, those revoked rather than unmapped, and the pages
  // whose hidden fault gave the revoked frame back with an mprotect.
  uint64_t mappings_revoked = 0;
  uint64_t pages_revived = 0;
  uint64_t pages_revived_at_invlpg = 0;  // Of pages_revived, without a hidden fault.
  uint64_t spaces_created = 0;
  uint64_t spaces_evicted = 0;
  // Regions whose directory entry was written but held the value their
  // mappings derive from at the flush.
  uint64_t directory_rewrites_kept = 0;
  // Pages whose table entry was written but still maps the same frame,
  // accessed, at the flush: kept as they were, or reprotected.
  uint64_t table_rewrites_kept = 0;
  uint64_t table_rewrites_reprotected = 0;
  // Pages kept, reprotected to what their entry grants, when their frame
  // stopped being traced (rather than dropped).
  uint64_t untraced_pages_kept = 0;
  // Inactive spaces whose directory was written, and of their regions with
  // mappings, those found unchanged when the space was activated again.
  uint64_t spaces_detached = 0;
  uint64_t regions_kept_on_return = 0;
};

class ShadowMmu {
 public:
  struct Options {
    size_t max_spaces = 16;
    // vm.max_map_count is 65530 by default; leave room for the rest of the VMM.
    uint64_t max_host_mappings = 48000;
    // How far a hidden fault looks for neighbours to map in the same mmap.
    uint32_t coalesce_pages = 64;
    // With paging off: the largest aligned run mapped per hidden fault (a
    // power of two).
    uint32_t identity_run_pages = 512;
    // A one-page memfd mapped read-only wherever the guest reads a physical
    // address outside RAM (what a bus without a device there returns);
    // writes there stay kNotRam for the caller. -1: reads are kNotRam too.
    int unassigned_fd = -1;
  };

  ShadowMmu(GuestMemory& memory, const Options& options);
  ~ShadowMmu();
  ShadowMmu(const ShadowMmu&) = delete;
  ShadowMmu& operator=(const ShadowMmu&) = delete;

  // The cached space for this paging mode, created if needed. Switching
  // between cached spaces costs nothing but this lookup. The reference stays
  // valid until the next activate() or flush_all(); the budget may empty the
  // active space but never destroys it.
  ShadowAddressSpace& activate(const PagingMode& mode);
  // The space for paging disabled (linear == physical). It is filled and
  // traced like any other (so code and descriptor tracing work before the
  // guest turns paging on), from runs of RAM instead of a walk.
  ShadowAddressSpace& activate_identity();

  HiddenFaultResult resolve_fault(ShadowAddressSpace& space, WindowKind window, uint32_t linear,
                                  bool write);

  // invlpg: apply the page-table stores so far, then drop the page in every
  // window of space, or give a revoked page back if its entry grants the
  // same frame again.
  void invalidate_page(ShadowAddressSpace& space, uint32_t linear);
  // A guest TLB flush: drop the mappings derived from every page-table entry
  // written since the last one. Deferring this is what makes a guest that
  // rewrites thousands of entries and then flushes once (fork, exit, exec)
  // pay one host call per run of dropped pages rather than one per store.
  void flush_table_writes();
  void flush_all();

  void trace_frame(uint32_t frame, TraceKind kind);
  void untrace_frame(uint32_t frame, TraceKind kind);
  TraceKinds trace_kinds(uint32_t frame) const;

  // The guest (through an emulated store) or the VMM wrote [physical,
  // physical + length): page-table entries written are recorded for the
  // next flush_table_writes(). Returns the trace kinds of the frames touched,
  // for the caller's own derived state (descriptors, translations), which
  // must be brought up to date at once.
  TraceKinds note_guest_write(uint32_t physical, uint32_t length);

  const ShadowMmuStats& stats() const { return stats_; }
  size_t space_count() const { return spaces_.size(); }
  // Cached spaces, most recently activated first (for the debugger).
  std::vector<const ShadowAddressSpace*> spaces() const {
    std::vector<const ShadowAddressSpace*> all;
    for (const auto& s : spaces_) all.push_back(s.get());
    return all;
  }
  // Every traced frame with its kinds.
  const std::unordered_map<uint32_t, TraceKinds>& traced_frames() const { return traced_; }
  uint64_t host_mapping_count() const;

  GuestPageWalker& walker() { return walker_; }

 private:
  struct FrameUse {
    ShadowAddressSpace* space;
    WindowKind window;
    uint32_t linear_page;
    friend bool operator==(const FrameUse&, const FrameUse&) = default;
  };
  struct TableUse {
    ShadowAddressSpace* space;
    bool directory;        // The frame is the space's page directory.
    uint32_t region_base;  // For a page table: linear base of its 4 MiB.
    friend bool operator==(const TableUse&, const TableUse&) = default;
  };

  ShadowAddressSpace& activate_key(const ShadowSpaceKey& key);
  HiddenFaultResult resolve_identity_fault(ShadowAddressSpace& space, WindowKind window,
                                           uint32_t linear, bool write);
  HostProtection protection_for(const PageTranslation& t, uint32_t frame) const;
  void map_unassigned(ShadowAddressSpace& space, WindowKind window, uint32_t linear_page);
  void map_run(ShadowAddressSpace& space, WindowKind window, uint32_t linear_page, uint32_t frame,
               uint32_t pages, HostProtection prot);
  void revive_granted(ShadowAddressSpace& space, uint32_t linear_page);
  uint32_t coalesce_forward(ShadowAddressSpace& space, WindowKind window, const PagingMode& mode,
                            const PageTranslation& t, HostProtection prot) const;
  void note_tables(ShadowAddressSpace& space, const PageTranslation& t);
  void note_directory_entry(ShadowAddressSpace& space, const PageTranslation& t);
  void forget_frame_use(uint32_t frame, const FrameUse& use);
  // Unmaps [first_page, +page_count) of one window, mapped runs in one call each.
  void drop_pages(ShadowAddressSpace& space, WindowKind window, uint32_t first_page,
                  uint32_t page_count);
  // Drops [first_page, +page_count) in both windows, widened to whole runs.
  void drop_range(ShadowAddressSpace& space, uint32_t first_page, uint32_t page_count);
  // One window of drop_range().
  void drop_runs(ShadowAddressSpace& space, WindowKind window, uint32_t first_page,
                 uint32_t page_count);
  // After stores to the table entries of [first_page, +page_count): keeps
  // each mapping the entry still allows, reprotected to what it allows now,
  // and drops the others.
  void refresh_range(ShadowAddressSpace& space, uint32_t first_page, uint32_t page_count);
  std::optional<HostProtection> protection_now(const ShadowAddressSpace& space, WindowKind window,
                                               uint32_t linear_page,
                                               const ShadowAddressSpace::Mapping& m) const;
  // After stores to entries [first_entry, +entry_count) of the table or
  // directory in frame: drops the regions of changed directory entries and
  // refreshes (refresh_range) the pages of table entries.
  void drop_derived(uint32_t frame, uint32_t first_entry, uint32_t entry_count);
  bool directory_entry_unchanged(const ShadowAddressSpace& space, uint32_t region) const;
  void forget_table_use(uint32_t frame, const TableUse& use);
  void forget_region_table(ShadowAddressSpace& space, uint32_t region);
  void detach_inactive_spaces_of_directory(uint32_t frame);
  void detach(ShadowAddressSpace& space);
  void revalidate(ShadowAddressSpace& space);
  void trace_directory(ShadowAddressSpace& space);
  // Once space maps nothing, its tables and directory are no longer in use.
  void release_if_unused(ShadowAddressSpace& space);
  void release_tables(ShadowAddressSpace& space);
  // Drops a whole 4 MiB region and stops tracing its table for the space.
  void drop_region(ShadowAddressSpace& space, uint32_t region);
  void clear(ShadowAddressSpace& space);
  void evict(ShadowAddressSpace& space);
  void enforce_budget();
  PagingMode mode_of(const ShadowAddressSpace& space) const;

  GuestMemory& memory_;
  Options options_;
  GuestPageWalker walker_;
  std::list<std::unique_ptr<ShadowAddressSpace>> spaces_;  // Most recently activated first.
  std::unordered_map<uint32_t, std::vector<FrameUse>> frame_uses_;
  std::unordered_map<uint32_t, std::vector<TableUse>> table_uses_;
  std::unordered_map<uint32_t, TraceKinds> traced_;
  using EntrySet = std::array<uint64_t, 16>;  // One bit per entry of a 4 KiB table.
  std::unordered_map<uint32_t, EntrySet> pending_table_writes_;
  ShadowMmuStats stats_;
};

}  // namespace bt86
