#include "shadow/shadow_mmu.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/unit/shadow/host_protection.h"

namespace bt86 {
namespace {

constexpr uint32_t kPd = 0x10000;
constexpr uint32_t kPt = 0x11000;
constexpr uint32_t P = pte::kPresent, W = pte::kWritable, U = pte::kUser, A = pte::kAccessed,
                   D = pte::kDirty;
using Kind = HiddenFaultResult::Kind;

class ShadowMmuTest : public ::testing::Test {
 protected:
  ShadowMmuTest() : memory_(16u << 20), mmu_(memory_, {}) {
    mode_.cr3 = kPd;
    mode_.pse = true;
    memory_.write_u32(kPd + 4, kPt | P | W | U);  // 0x00400000-0x007FFFFF
  }
  void map(uint32_t linear, uint32_t physical, uint32_t flags) {
    memory_.write_u32(pte_address(linear), (physical & 0xFFFFF000) | flags);
  }
  static uint32_t pte_address(uint32_t linear) { return kPt + ((linear >> 12) & 0x3FF) * 4; }
  // The guest clears the entry, as its (emulated) store reports it.
  void guest_unmaps(uint32_t linear) {
    map(linear, 0, 0);
    mmu_.note_guest_write(pte_address(linear), 4);
  }
  uint8_t* at(ShadowAddressSpace& s, WindowKind w, uint32_t linear) {
    return s.window(w).base() + linear;
  }

  GuestMemory memory_;
  ShadowMmu mmu_;
  PagingMode mode_;
};

TEST_F(ShadowMmuTest, ReadFaultMapsReadOnlyUntilTheFirstWriteSetsDirty) {
  map(0x00401000, 0x00200000, P | W);
  memory_.write_u32(0x00200010, 0xfeedf00d);
  auto& s = mmu_.activate(mode_);
  auto r = mmu_.resolve_fault(s, WindowKind::kSupervisor, 0x00401010, false);
  ASSERT_EQ(r.kind, Kind::kMapped);
  uint32_t v;
  std::memcpy(&v, at(s, WindowKind::kSupervisor, 0x00401010), 4);
  EXPECT_EQ(v, 0xfeedf00du);
  EXPECT_EQ(host_protection(at(s, WindowKind::kSupervisor, 0x00401000)), "r--");
  EXPECT_TRUE(memory_.read_u32(pte_address(0x00401000)) & A);
  EXPECT_FALSE(memory_.read_u32(pte_address(0x00401000)) & D);

  r = mmu_.resolve_fault(s, WindowKind::kSupervisor, 0x00401010, true);
  ASSERT_EQ(r.kind, Kind::kMapped);
  EXPECT_TRUE(memory_.read_u32(pte_address(0x00401000)) & D);
  EXPECT_EQ(host_protection(at(s, WindowKind::kSupervisor, 0x00401000)), "rw-");
  *reinterpret_cast<volatile uint32_t*>(at(s, WindowKind::kSupervisor, 0x00401010)) = 7;
  EXPECT_EQ(memory_.read_u32(0x00200010), 7u) << "windows share the memfd with the VMM";
}

TEST_F(ShadowMmuTest, GuestFaultsCarryTheHardwareErrorCode) {
  map(0x00402000, 0x00200000, P | W);  // Supervisor only.
  auto& s = mmu_.activate(mode_);
  auto r = mmu_.resolve_fault(s, WindowKind::kUser, 0x00402000, true);
  EXPECT_EQ(r.kind, Kind::kGuestPageFault);
  EXPECT_EQ(r.error_code, pf_error::kPresent | pf_error::kWrite | pf_error::kUser);
  r = mmu_.resolve_fault(s, WindowKind::kSupervisor, 0x00403000, false);
  EXPECT_EQ(r.kind, Kind::kGuestPageFault);
  EXPECT_EQ(r.error_code, 0u);
  EXPECT_EQ(host_protection(at(s, WindowKind::kUser, 0x00402000)), "---");
}

TEST_F(ShadowMmuTest, PageTablesAreTracedAndWritesToThemDropDerivedMappings) {
  map(0x00404000, 0x00200000, P | W | U | A | D);
  map(0x00405000, kPt, P | W);  // The page table maps itself at 0x00405000.
  auto& s = mmu_.activate(mode_);
  ASSERT_EQ(mmu_.resolve_fault(s, WindowKind::kUser, 0x00404000, true).kind, Kind::kMapped);
  EXPECT_TRUE(has_kind(mmu_.trace_kinds(kPt >> 12), TraceKind::kPageTable));
  EXPECT_TRUE(has_kind(mmu_.trace_kinds(kPd >> 12), TraceKind::kPageTable));

  // A write through the self-map is a trace write, never a silent store.
  auto r = mmu_.resolve_fault(s, WindowKind::kSupervisor, 0x00405000 + 4 * 4, true);
  ASSERT_EQ(r.kind, Kind::kTraceWrite);
  EXPECT_EQ(r.physical, kPt + 16);
  EXPECT_TRUE(has_kind(r.trace_kinds, TraceKind::kPageTable));

  // The runtime emulates the store (remapping 0x00404000), then reports it.
  map(0x00404000, 0x00300000, P | W | U | A | D);
  mmu_.note_guest_write(kPt + 4 * 4, 4);
  EXPECT_TRUE(s.mappings(WindowKind::kUser).contains(0x00404)) << "stale until the TLB flush";
  mmu_.flush_table_writes();
  EXPECT_FALSE(s.mappings(WindowKind::kUser).contains(0x00404));
  EXPECT_EQ(host_protection(at(s, WindowKind::kUser, 0x00404000)), "---");
  memory_.write_u32(0x00300000, 0x1234);
  ASSERT_EQ(mmu_.resolve_fault(s, WindowKind::kUser, 0x00404000, false).kind, Kind::kMapped);
  uint32_t v;
  std::memcpy(&v, at(s, WindowKind::kUser, 0x00404000), 4);
  EXPECT_EQ(v, 0x1234u);
}

TEST_F(ShadowMmuTest, DirectoryWritesDropTheWholeRegionAndReleaseItsTable) {
  map(0x00406000, 0x00200000, P | W | A | D);
  auto& s = mmu_.activate(mode_);
  ASSERT_EQ(mmu_.resolve_fault(s, WindowKind::kSupervisor, 0x00406000, true).kind, Kind::kMapped);
  memory_.write_u32(kPd + 4, 0);
  mmu_.note_guest_write(kPd + 4, 4);
  EXPECT_FALSE(s.mappings(WindowKind::kSupervisor).empty()) << "stale until the TLB flush";
  mmu_.flush_table_writes();
  EXPECT_TRUE(s.mappings(WindowKind::kSupervisor).empty());
  EXPECT_FALSE(has_kind(mmu_.trace_kinds(kPt >> 12), TraceKind::kPageTable))
      << "a table no space uses any more is no longer traced";
  EXPECT_EQ(mmu_.resolve_fault(s, WindowKind::kSupervisor, 0x00406000, false).kind,
            Kind::kGuestPageFault);
}

// Linux's fork: the new directory page is cleared and the kernel's entries
// copied back in before the flush. An entry that ends up as it was changes
// no translation, so the region keeps its mappings; one that differs, even
// by a cleared accessed bit, drops them.
TEST_F(ShadowMmuTest, DirectoryEntriesRewrittenUnchangedKeepTheirRegion) {
  map(0x00406000, 0x00200000, P | W | A | D);
  auto& s = mmu_.activate(mode_);
  ASSERT_EQ(mmu_.resolve_fault(s, WindowKind::kSupervisor, 0x00406000, true).kind, Kind::kMapped);
  const uint32_t entry = memory_.read_u32(kPd + 4);
  ASSERT_TRUE(entry & A) << "the walk set the directory entry's accessed bit";
  memory_.write_u32(kPd + 4, 0);
  mmu_.note_guest_write(kPd + 4, 4);
  memory_.write_u32(kPd + 4, entry);
  mmu_.note_guest_write(kPd + 4, 4);
  mmu_.flush_table_writes();
  EXPECT_EQ(s.mappings(WindowKind::kSupervisor).size(), 1u);
  EXPECT_EQ(mmu_.stats().directory_rewrites_kept, 1u);

  memory_.write_u32(kPd + 4, entry & ~A);
  mmu_.note_guest_write(kPd + 4, 4);
  mmu_.flush_table_writes();
  EXPECT_TRUE(s.mappings(WindowKind::kSupervisor).empty());
  ASSERT_EQ(mmu_.resolve_fault(s, WindowKind::kSupervisor, 0x00406000, false).kind, Kind::kMapped);
  EXPECT_TRUE(memory_.read_u32(kPd + 4) & A) << "the next walk sets it again";
}

// A process's exit: its entries are cleared and the TLB flushed, after
// which its tables hold nothing the windows depend on. Reusing those frames
// (for data, or another process's tables) must not take trace faults.
TEST_F(ShadowMmuTest, TablesWithNoDerivedMappingsLeftAreNotTraced) {
  map(0x00408000, 0x00200000, P | W | A | D);
  map(0x00409000, 0x00205000, P | W | A | D);  // Not contiguous: two host mappings.
  auto& s = mmu_.activate(mode_);
  ASSERT_EQ(mmu_.resolve_fault(s, WindowKind::kSupervisor, 0x00408000, true).kind, Kind::kMapped);
  ASSERT_EQ(mmu_.resolve_fault(s, WindowKind::kSupervisor, 0x00409000, true).kind, Kind::kMapped);
  guest_unmaps(0x00408000);
  mmu_.flush_table_writes();
  EXPECT_TRUE(has_kind(mmu_.trace_kinds(kPt >> 12), TraceKind::kPageTable))
      << "0x00409000 still depends on the table";
  guest_unmaps(0x00409000);
  mmu_.flush_table_writes();
  EXPECT_TRUE(s.mappings(WindowKind::kSupervisor).empty());
  EXPECT_EQ(mmu_.trace_kinds(kPt >> 12), 0);
  EXPECT_EQ(mmu_.trace_kinds(kPd >> 12), 0);

  // The next walk through them traces both again.
  map(0x00408000, 0x00202000, P | W | A | D);
  ASSERT_EQ(mmu_.resolve_fault(s, WindowKind::kSupervisor, 0x00408000, false).kind, Kind::kMapped);
  EXPECT_TRUE(has_kind(mmu_.trace_kinds(kPt >> 12), TraceKind::kPageTable));
  EXPECT_TRUE(has_kind(mmu_.trace_kinds(kPd >> 12), TraceKind::kPageTable));
  map(0x00408000, 0x00203000, P | W | A | D);
  mmu_.note_guest_write(pte_address(0x00408000), 4);
  mmu_.flush_table_writes();
  EXPECT_TRUE(s.mappings(WindowKind::kSupervisor).empty());
}

TEST_F(ShadowMmuTest, AnEmptiedRegionKeepsItsTableWhileTheDirectoryEntryStands) {
  constexpr uint32_t kOtherPt = 0x12000;
  memory_.write_u32(kPd + 8, kOtherPt | P | W | A);  // 0x00800000-0x00BFFFFF
  memory_.write_u32(kOtherPt, 0x00300000 | P | W | A | D);
  map(0x00408000, 0x00200000, P | W | A | D);
  auto& s = mmu_.activate(mode_);
  ASSERT_EQ(mmu_.resolve_fault(s, WindowKind::kSupervisor, 0x00800000, false).kind, Kind::kMapped);
  ASSERT_EQ(mmu_.resolve_fault(s, WindowKind::kSupervisor, 0x00408000, false).kind, Kind::kMapped);

  // Unmapping the region's only page empties it; its table stays traced.
  guest_unmaps(0x00408000);
  mmu_.flush_table_writes();
  EXPECT_FALSE(s.mappings(WindowKind::kSupervisor).contains(0x00408));
  EXPECT_TRUE(has_kind(mmu_.trace_kinds(kPt >> 12), TraceKind::kPageTable));

  // Mapping it again records the write; the next flush finds nothing stale.
  map(0x00408000, 0x00201000, P | W | A | D);
  mmu_.note_guest_write(pte_address(0x00408000), 4);
  mmu_.flush_table_writes();
  ASSERT_EQ(mmu_.resolve_fault(s, WindowKind::kSupervisor, 0x00408000, false).kind, Kind::kMapped);
  EXPECT_EQ(s.mappings(WindowKind::kSupervisor).at(0x00408).frame, 0x00201u);

  // Empty again, then the directory entry goes: now the table is released.
  guest_unmaps(0x00408000);
  memory_.write_u32(kPd + 4, 0);
  mmu_.note_guest_write(kPd + 4, 4);
  mmu_.flush_table_writes();
  EXPECT_EQ(mmu_.trace_kinds(kPt >> 12), 0);
  EXPECT_TRUE(has_kind(mmu_.trace_kinds(kOtherPt >> 12), TraceKind::kPageTable));
  EXPECT_TRUE(has_kind(mmu_.trace_kinds(kPd >> 12), TraceKind::kPageTable));
}

// Linux frees an exited process's directory and reuses the frame, often
// as a page table or a directory again. A store to the directory of a space
// that is not active detaches the space: the frame is no longer traced,
// the mappings wait, and activation keeps exactly the regions whose entry
// is the one their mappings derive from.
TEST_F(ShadowMmuTest, ADirectoryWrittenWhileItsSpaceIsInactiveIsCheckedOnItsReturn) {
  constexpr uint32_t kOtherPt = 0x12000;
  constexpr uint32_t kOtherPd = 0x13000;
  memory_.write_u32(kPd + 8, kOtherPt | P | W | A);  // 0x00800000-0x00BFFFFF
  memory_.write_u32(kOtherPt, 0x00300000 | P | W | A | D);
  memory_.write_u32(kPd + 12, 0x00400000 | P | W | A | D | pte::kPageSize);
  map(0x00408000, 0x00200000, P | W | A | D);
  auto& s = mmu_.activate(mode_);
  for (uint32_t linear : {0x00408000u, 0x00800000u, 0x00C00000u}) {
    ASSERT_EQ(mmu_.resolve_fault(s, WindowKind::kSupervisor, linear, false).kind, Kind::kMapped);
  }
  const uint32_t table_entry = memory_.read_u32(kPd + 4);
  const uint32_t large_entry = memory_.read_u32(kPd + 12);
  // The region of kOtherPt empties, as a process's user half does at exit.
  memory_.write_u32(kOtherPt, 0);
  mmu_.note_guest_write(kOtherPt, 4);
  mmu_.flush_table_writes();
  ASSERT_TRUE(has_kind(mmu_.trace_kinds(kOtherPt >> 12), TraceKind::kPageTable));

  PagingMode other = mode_;
  other.cr3 = kOtherPd;
  mmu_.activate(other);
  memory_.write_u32(kPd + 4, 0);
  mmu_.note_guest_write(kPd + 4, 4);
  EXPECT_EQ(mmu_.stats().spaces_detached, 1u);
  EXPECT_EQ(mmu_.trace_kinds(kPd >> 12), 0) << "later stores to the frame run untraced";
  EXPECT_EQ(mmu_.trace_kinds(kOtherPt >> 12), 0) << "a table of an empty region is released";
  EXPECT_TRUE(has_kind(mmu_.trace_kinds(kPt >> 12), TraceKind::kPageTable))
      << "a table with mappings derived from it stays traced";
  EXPECT_TRUE(s.mappings(WindowKind::kSupervisor).contains(0x00C00)) << "mappings wait";

  // The frame is a directory again: one entry comes back as it was, the
  // large page now points elsewhere.
  memory_.write_u32(kPd + 4, table_entry);
  memory_.write_u32(kPd + 12, large_entry + 0x00400000);
  auto& back = mmu_.activate(mode_);
  ASSERT_EQ(&back, &s);
  EXPECT_TRUE(s.mappings(WindowKind::kSupervisor).contains(0x00408));
  EXPECT_FALSE(s.mappings(WindowKind::kSupervisor).contains(0x00C00));
  EXPECT_EQ(mmu_.stats().regions_kept_on_return, 1u);
  EXPECT_TRUE(has_kind(mmu_.trace_kinds(kPd >> 12), TraceKind::kPageTable));
  ASSERT_EQ(mmu_.resolve_fault(s, WindowKind::kSupervisor, 0x00C00000, false).kind, Kind::kMapped);
  EXPECT_EQ(s.mappings(WindowKind::kSupervisor).at(0x00C00).frame, 0x00800u);
}

TEST_F(ShadowMmuTest, AFlushDropsExactlyTheEntriesWrittenAcrossWordsOfTheWriteSet) {
  auto linear = [](uint32_t entry) { return 0x00400000 + entry * 4096; };
  const std::vector<uint32_t> entries = {0, 61, 62, 63, 64, 65, 66, 127, 128, 1023};
  // Frames two apart, so no two pages share a host mapping.
  for (uint32_t e : entries) map(linear(e), 0x00200000 + e * 0x2000, P | W | A | D);
  auto& s = mmu_.activate(mode_);
  for (uint32_t e : entries) {
    ASSERT_EQ(mmu_.resolve_fault(s, WindowKind::kSupervisor, linear(e), false).kind, Kind::kMapped);
  }
  for (uint32_t e : {62u, 63u, 64u, 65u, 128u, 1023u}) guest_unmaps(linear(e));
  mmu_.flush_table_writes();
  for (uint32_t e : entries) {
    const bool written = e == 62 || e == 63 || e == 64 || e == 65 || e == 128 || e == 1023;
    EXPECT_EQ(s.mappings(WindowKind::kSupervisor).contains(linear(e) >> 12), !written)
        << "entry " << e;
  }
}

TEST_F(ShadowMmuTest, TracedFramesAreWriteProtectedEverywhereTheyAreMapped) {
  map(0x00407000, 0x00500000, P | W | A | D);
  auto& s = mmu_.activate(mode_);
  ASSERT_EQ(mmu_.resolve_fault(s, WindowKind::kSupervisor, 0x00407000, true).kind, Kind::kMapped);
  EXPECT_EQ(host_protection(at(s, WindowKind::kSupervisor, 0x00407000)), "rw-");
  mmu_.trace_frame(0x00500, TraceKind::kCode);
  EXPECT_EQ(host_protection(at(s, WindowKind::kSupervisor, 0x00407000)), "r--");
  auto r = mmu_.resolve_fault(s, WindowKind::kSupervisor, 0x00407000, true);
  EXPECT_EQ(r.kind, Kind::kTraceWrite);
  EXPECT_TRUE(has_kind(r.trace_kinds, TraceKind::kCode));
  mmu_.untrace_frame(0x00500, TraceKind::kCode);
  ASSERT_EQ(mmu_.resolve_fault(s, WindowKind::kSupervisor, 0x00407000, true).kind, Kind::kMapped);
  EXPECT_EQ(host_protection(at(s, WindowKind::kSupervisor, 0x00407000)), "rw-");
}

// A frame that stops being traced (a released page table the guest reuses
// as data) gets back, in every page that maps it, what the page's entry
// grants now, without a hidden fault; a page whose entry no longer maps the
// frame is dropped instead.
TEST_F(ShadowMmuTest, UntracingAFrameGivesItsPagesWhatTheirEntriesGrantNow) {
  map(0x00407000, 0x00500000, P | W | A | D);
  map(0x00408000, 0x00500000, P | W | A);  // D clear: the first write must fault.
  map(0x00409000, 0x00500000, P | W | A | D);
  auto& s = mmu_.activate(mode_);
  for (uint32_t linear : {0x00407000u, 0x00408000u, 0x00409000u}) {
    ASSERT_EQ(mmu_.resolve_fault(s, WindowKind::kSupervisor, linear, false).kind, Kind::kMapped);
  }
  mmu_.trace_frame(0x00500, TraceKind::kCode);
  for (uint32_t linear : {0x00407000u, 0x00408000u, 0x00409000u}) {
    EXPECT_EQ(host_protection(at(s, WindowKind::kSupervisor, linear)), "r--") << linear;
  }
  map(0x00409000, 0x00501000, P | W | A | D);
  const uint64_t faults = mmu_.stats().hidden_faults;
  mmu_.untrace_frame(0x00500, TraceKind::kCode);
  EXPECT_EQ(host_protection(at(s, WindowKind::kSupervisor, 0x00407000)), "rw-");
  EXPECT_EQ(host_protection(at(s, WindowKind::kSupervisor, 0x00408000)), "r--");
  EXPECT_EQ(host_protection(at(s, WindowKind::kSupervisor, 0x00409000)), "---");
  EXPECT_FALSE(s.mappings(WindowKind::kSupervisor).contains(0x00409));
  EXPECT_EQ(mmu_.stats().untraced_pages_kept, 2u);
  EXPECT_EQ(mmu_.stats().hidden_faults, faults);
}

// A released page table goes back to Linux's allocator and is written, if
// at all, in one of the spaces that map it: its pages stay read-only until
// a write there faults, instead of costing an mprotect in each at once.
TEST_F(ShadowMmuTest, AnUntracedPageTableFrameStaysReadOnlyUntilAWriteFaults) {
  map(0x00407000, 0x00500000, P | W | A | D);
  auto& s = mmu_.activate(mode_);
  ASSERT_EQ(mmu_.resolve_fault(s, WindowKind::kSupervisor, 0x00407000, true).kind, Kind::kMapped);
  mmu_.trace_frame(0x00500, TraceKind::kPageTable);
  ASSERT_EQ(host_protection(at(s, WindowKind::kSupervisor, 0x00407000)), "r--");
  mmu_.untrace_frame(0x00500, TraceKind::kPageTable);
  EXPECT_EQ(host_protection(at(s, WindowKind::kSupervisor, 0x00407000)), "r--");
  EXPECT_TRUE(s.mappings(WindowKind::kSupervisor).contains(0x00407));
  EXPECT_EQ(mmu_.stats().untraced_pages_kept, 1u);
  ASSERT_EQ(mmu_.resolve_fault(s, WindowKind::kSupervisor, 0x00407000, true).kind, Kind::kMapped);
  EXPECT_EQ(host_protection(at(s, WindowKind::kSupervisor, 0x00407000)), "rw-");
}

TEST_F(ShadowMmuTest, AccessedContiguousNeighboursShareOneHostMapping) {
  for (uint32_t i = 0; i < 8; ++i) map(0x00410000 + i * 4096, 0x00600000 + i * 4096, P | W | A);
  map(0x00418000, 0x00608000, P | W);  // Contiguous but never accessed: must fault itself.
  auto& s = mmu_.activate(mode_);
  ASSERT_EQ(mmu_.resolve_fault(s, WindowKind::kSupervisor, 0x00410000, false).kind, Kind::kMapped);
  EXPECT_EQ(mmu_.stats().host_mappings_created, 1u);
  EXPECT_EQ(mmu_.stats().pages_mapped, 8u);
  EXPECT_FALSE(s.mappings(WindowKind::kSupervisor).contains(0x00418));
  EXPECT_FALSE(memory_.read_u32(pte_address(0x00418000)) & A);
}

TEST_F(ShadowMmuTest, LargePagesMapAtOnce) {
  memory_.write_u32(kPd + 3 * 4, 0x00800000 | P | W | pte::kPageSize);
  auto& s = mmu_.activate(mode_);
  ASSERT_EQ(mmu_.resolve_fault(s, WindowKind::kSupervisor, 0x00c00000, true).kind, Kind::kMapped);
  EXPECT_EQ(mmu_.stats().host_mappings_created, 1u);
  EXPECT_EQ(mmu_.stats().pages_mapped, 64u) << "coalescing is bounded by coalesce_pages";
  memory_.write_u32(0x00800000 + 0x3000, 99);
  uint32_t v;
  std::memcpy(&v, at(s, WindowKind::kSupervisor, 0x00c03000), 4);
  EXPECT_EQ(v, 99u);
}

TEST_F(ShadowMmuTest, SpacesAreCachedPerCr3AndEvictedLeastRecentlyUsedFirst) {
  ShadowMmu mmu(memory_, {.max_spaces = 2});
  PagingMode a = mode_, b = mode_, c = mode_;
  b.cr3 = 0x20000;
  c.cr3 = 0x30000;
  ShadowAddressSpace* sa = &mmu.activate(a);
  mmu.activate(b);
  EXPECT_EQ(&mmu.activate(a), sa) << "switching back costs no rebuild";
  mmu.activate(c);  // Evicts b, the least recently activated.
  EXPECT_EQ(mmu.space_count(), 2u);
  EXPECT_EQ(mmu.stats().spaces_evicted, 1u);
  EXPECT_EQ(&mmu.activate(a), sa);
  PagingMode wp = mode_;
  wp.wp = true;
  EXPECT_NE(&mmu.activate(wp), sa) << "CR0.WP changes supervisor permissions: another space";
}

TEST_F(ShadowMmuTest, TheMappingBudgetEmptiesSpacesInsteadOfFailing) {
  ShadowMmu mmu(memory_, {.max_host_mappings = 4, .coalesce_pages = 1});
  for (uint32_t i = 0; i < 16; ++i) map(0x00420000 + i * 4096, 0x00700000 + i * 4096, P | W);
  auto& s = mmu.activate(mode_);
  for (uint32_t i = 0; i < 16; ++i) {
    ASSERT_EQ(mmu.resolve_fault(s, WindowKind::kSupervisor, 0x00420000 + i * 4096, false).kind,
              Kind::kMapped);
    EXPECT_LE(mmu.host_mapping_count(), 4u);
  }
}

TEST_F(ShadowMmuTest, InvlpgDropsThePageItsEntryNoLongerMaps) {
  map(0x00430000, 0x00200000, P | W | A);
  auto& s = mmu_.activate(mode_);
  ASSERT_EQ(mmu_.resolve_fault(s, WindowKind::kSupervisor, 0x00430000, false).kind, Kind::kMapped);
  guest_unmaps(0x00430000);
  mmu_.invalidate_page(s, 0x00430abc);
  EXPECT_EQ(host_protection(at(s, WindowKind::kSupervisor, 0x00430000)), "---");
}

// Fork write-protects the parent's pages and a later write fault makes a
// page writable again, each time for the same frame: the flush reprotects
// the mapping instead of dropping it (no hidden fault at the next touch).
// A cleared accessed bit still drops it, so that the next access sets it.
TEST_F(ShadowMmuTest, AnEntryRewrittenForTheSameFrameKeepsItsPageReprotected) {
  map(0x00431000, 0x00200000, P | W | A | D);
  mode_.wp = true;  // As Linux runs: R/W binds the supervisor too.
  auto& s = mmu_.activate(mode_);
  const auto page = at(s, WindowKind::kSupervisor, 0x00431000);
  ASSERT_EQ(mmu_.resolve_fault(s, WindowKind::kSupervisor, 0x00431000, true).kind, Kind::kMapped);
  ASSERT_EQ(host_protection(page), "rw-");

  map(0x00431000, 0x00200000, P | A | D);
  mmu_.note_guest_write(pte_address(0x00431000), 4);
  mmu_.flush_table_writes();
  EXPECT_TRUE(s.mappings(WindowKind::kSupervisor).contains(0x00431));
  EXPECT_EQ(host_protection(page), "r--");

  map(0x00431000, 0x00200000, P | W | A | D);
  mmu_.note_guest_write(pte_address(0x00431000), 4);
  mmu_.invalidate_page(s, 0x00431000);
  EXPECT_EQ(host_protection(page), "rw-");
  EXPECT_EQ(mmu_.stats().table_rewrites_reprotected, 2u);
  EXPECT_EQ(mmu_.stats().hidden_faults, 1u);

  map(0x00431000, 0x00200000, P | W | D);
  mmu_.invalidate_page(s, 0x00431000);
  EXPECT_FALSE(s.mappings(WindowKind::kSupervisor).contains(0x00431));
  EXPECT_EQ(host_protection(page), "---");
}

TEST_F(ShadowMmuTest, DroppingAPageDropsTheWholeRunItWasMappedWith) {
  for (uint32_t i = 0; i < 8; ++i) map(0x00440000 + i * 4096, 0x00600000 + i * 4096, P | W | A);
  map(0x00448000, 0x00700000, P | W | A);  // Not contiguous: a run of its own.
  auto& s = mmu_.activate(mode_);
  ASSERT_EQ(mmu_.resolve_fault(s, WindowKind::kSupervisor, 0x00440000, false).kind, Kind::kMapped);
  ASSERT_EQ(mmu_.resolve_fault(s, WindowKind::kSupervisor, 0x00448000, false).kind, Kind::kMapped);
  ASSERT_EQ(mmu_.stats().host_mappings_created, 2u);

  guest_unmaps(0x00443000);
  mmu_.invalidate_page(s, 0x00443000);
  const auto& mapped = s.mappings(WindowKind::kSupervisor);
  for (uint32_t i = 0; i < 8; ++i) {
    EXPECT_FALSE(mapped.contains(0x00440 + i)) << i;
    EXPECT_EQ(host_protection(at(s, WindowKind::kSupervisor, 0x00440000 + i * 4096)), "---") << i;
  }
  EXPECT_TRUE(mapped.contains(0x00448)) << "another run stays";
  EXPECT_EQ(host_protection(at(s, WindowKind::kSupervisor, 0x00448000)), "r--");
  EXPECT_EQ(mmu_.resolve_fault(s, WindowKind::kSupervisor, 0x00442000, false).kind, Kind::kMapped)
      << "a neighbour still present in the guest's table comes back on its next touch";
}

// A dropped page is revoked: when the guest maps the same frame there again
// the hidden fault revives it with an mprotect instead of an mmap. A page
// mapped to another frame meanwhile must get that frame, never the old one.
TEST_F(ShadowMmuTest, ADroppedPageIsRevivedOnlyForTheFrameStillBehindIt) {
  map(0x00450000, 0x00200000, P | W | A | D);
  memory_.write_u32(0x00200000, 0xaaaa);
  memory_.write_u32(0x00300000, 0xbbbb);
  auto& s = mmu_.activate(mode_);
  const auto read = [&] {
    uint32_t v;
    std::memcpy(&v, at(s, WindowKind::kSupervisor, 0x00450000), 4);
    return v;
  };
  ASSERT_EQ(mmu_.resolve_fault(s, WindowKind::kSupervisor, 0x00450000, true).kind, Kind::kMapped);
  const uint64_t mappings = mmu_.host_mapping_count();
  guest_unmaps(0x00450000);
  mmu_.invalidate_page(s, 0x00450000);
  map(0x00450000, 0x00200000, P | W | A | D);
  EXPECT_EQ(host_protection(at(s, WindowKind::kSupervisor, 0x00450000)), "---");
  EXPECT_EQ(mmu_.host_mapping_count(), mappings) << "a revoked page still counts";

  ASSERT_EQ(mmu_.resolve_fault(s, WindowKind::kSupervisor, 0x00450000, false).kind, Kind::kMapped);
  EXPECT_EQ(mmu_.stats().host_mappings_created, 1u);
  EXPECT_EQ(mmu_.stats().pages_revived, 1u);
  EXPECT_EQ(host_protection(at(s, WindowKind::kSupervisor, 0x00450000)), "rw-");
  EXPECT_EQ(read(), 0xaaaau);

  map(0x00450000, 0x00300000, P | W | A);
  mmu_.invalidate_page(s, 0x00450000);
  ASSERT_EQ(mmu_.resolve_fault(s, WindowKind::kSupervisor, 0x00450000, false).kind, Kind::kMapped);
  EXPECT_EQ(mmu_.stats().host_mappings_created, 2u);
  EXPECT_EQ(mmu_.stats().pages_revived, 1u);
  EXPECT_EQ(host_protection(at(s, WindowKind::kSupervisor, 0x00450000)), "r--");
  EXPECT_EQ(read(), 0xbbbbu);
}

// Linux's early_memremap maps a frame at a fixed slot, flushes, reads,
// unmaps and flushes, thousands of times: the invlpg after the map gives
// back the page the last unmap revoked, without waiting for a hidden fault.
// Only that page, and only for the frame still behind it with A set.
TEST_F(ShadowMmuTest, InvlpgRevivesThePageItLastRevokedWhenItsEntryGrantsItAgain) {
  constexpr uint32_t kSlot = 0x00460000, kNext = 0x00461000;
  map(kSlot, 0x00200000, P | W | A);
  map(kNext, 0x00201000, P | W | A);
  auto& s = mmu_.activate(mode_);
  ASSERT_EQ(mmu_.resolve_fault(s, WindowKind::kSupervisor, kSlot, false).kind, Kind::kMapped);
  const uint64_t faults = mmu_.stats().hidden_faults;

  guest_unmaps(kSlot);
  mmu_.invalidate_page(s, kSlot);
  ASSERT_EQ(host_protection(at(s, WindowKind::kSupervisor, kSlot)), "---");
  guest_unmaps(kNext);  // Never touched: its invlpg must not make the slot forgotten.
  mmu_.invalidate_page(s, kNext);

  map(kSlot, 0x00200000, P | W | A);
  mmu_.note_guest_write(pte_address(kSlot), 4);
  mmu_.invalidate_page(s, kSlot);
  EXPECT_EQ(host_protection(at(s, WindowKind::kSupervisor, kSlot)), "r--");
  EXPECT_EQ(mmu_.stats().pages_revived_at_invlpg, 1u);
  EXPECT_EQ(mmu_.stats().hidden_faults, faults);

  // Revoked again, then mapped to another frame: that one needs a fault.
  guest_unmaps(kSlot);
  mmu_.invalidate_page(s, kSlot);
  map(kSlot, 0x00300000, P | W | A);
  mmu_.note_guest_write(pte_address(kSlot), 4);
  mmu_.invalidate_page(s, kSlot);
  EXPECT_EQ(host_protection(at(s, WindowKind::kSupervisor, kSlot)), "---");

  // Revoked for its frame, mapped back without A: the walk must set A.
  map(kSlot, 0x00200000, P | W | A);
  mmu_.note_guest_write(pte_address(kSlot), 4);
  mmu_.invalidate_page(s, kSlot);
  ASSERT_EQ(mmu_.resolve_fault(s, WindowKind::kSupervisor, kSlot, false).kind, Kind::kMapped);
  guest_unmaps(kSlot);
  mmu_.invalidate_page(s, kSlot);
  map(kSlot, 0x00200000, P | W);
  mmu_.note_guest_write(pte_address(kSlot), 4);
  mmu_.invalidate_page(s, kSlot);
  EXPECT_EQ(host_protection(at(s, WindowKind::kSupervisor, kSlot)), "---");
  EXPECT_EQ(mmu_.stats().pages_revived_at_invlpg, 1u);
}

TEST_F(ShadowMmuTest, PhysicalAddressesOutsideRamAreReportedNotMapped) {
  map(0x00440000, 0xF0000000, P | W);
  auto& s = mmu_.activate(mode_);
  auto r = mmu_.resolve_fault(s, WindowKind::kSupervisor, 0x00440008, false);
  EXPECT_EQ(r.kind, Kind::kNotRam);
  EXPECT_EQ(r.physical, 0xF0000008u);
}

}  // namespace
}  // namespace bt86
