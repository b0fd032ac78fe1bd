#include "shadow/guest_page_walker.h"

#include <gtest/gtest.h>

namespace bt86 {
namespace {

constexpr uint32_t kPd = 0x10000;
constexpr uint32_t kPt = 0x11000;
constexpr uint32_t P = pte::kPresent, W = pte::kWritable, U = pte::kUser;

class PageWalkerTest : public ::testing::Test {
 protected:
  PageWalkerTest() : memory_(16u << 20), walker_(memory_) {
    mode_.cr3 = kPd;
    // Linear 0x00400000-0x007FFFFF through kPt.
    memory_.write_u32(kPd + 1 * 4, kPt | P | W | U);
  }
  void map(uint32_t linear, uint32_t physical, uint32_t flags) {
    memory_.write_u32(kPt + ((linear >> 12) & 0x3FF) * 4, (physical & 0xFFFFF000) | flags);
  }
  uint32_t pte_of(uint32_t linear) { return memory_.read_u32(kPt + ((linear >> 12) & 0x3FF) * 4); }

  GuestMemory memory_;
  GuestPageWalker walker_;
  PagingMode mode_;
};

TEST_F(PageWalkerTest, TranslatesA4KiBPageAndSetsAccessedThenDirty) {
  map(0x00401000, 0x00234000, P | W | U);
  auto r = walker_.translate(mode_, 0x00401abc, {AccessType::kRead, false});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.translation->physical, 0x00234abcu);
  EXPECT_EQ(r.translation->page_size, 4096u);
  EXPECT_EQ(r.translation->page_linear, 0x00401000u);
  EXPECT_TRUE(pte_of(0x00401000) & pte::kAccessed);
  EXPECT_FALSE(pte_of(0x00401000) & pte::kDirty);
  EXPECT_TRUE(memory_.read_u32(kPd + 4) & pte::kAccessed);
  r = walker_.translate(mode_, 0x00401000, {AccessType::kWrite, true});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(pte_of(0x00401000) & pte::kDirty);
  EXPECT_TRUE(r.translation->dirty);
}

TEST_F(PageWalkerTest, NotPresentGivesErrorCodeWithoutP) {
  EXPECT_EQ(walker_.translate(mode_, 0x00800000, {AccessType::kRead, false}).error_code, 0u);
  EXPECT_EQ(walker_.translate(mode_, 0x00402000, {AccessType::kWrite, true}).error_code,
            pf_error::kWrite | pf_error::kUser);
}

TEST_F(PageWalkerTest, UserAccessToSupervisorPageIsAProtectionFault) {
  map(0x00403000, 0x00300000, P | W);
  auto r = walker_.translate(mode_, 0x00403000, {AccessType::kRead, true});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error_code, pf_error::kPresent | pf_error::kUser);
  EXPECT_FALSE(pte_of(0x00403000) & pte::kAccessed) << "a faulting walk must not set A";
  EXPECT_TRUE(walker_.translate(mode_, 0x00403000, {AccessType::kRead, false}).ok());
}

TEST_F(PageWalkerTest, SupervisorWritesToReadOnlyPagesObeyCr0Wp) {
  map(0x00404000, 0x00300000, P | U);
  EXPECT_TRUE(walker_.translate(mode_, 0x00404000, {AccessType::kWrite, false}).ok());
  mode_.wp = true;
  auto r = walker_.translate(mode_, 0x00404000, {AccessType::kWrite, false});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error_code, pf_error::kPresent | pf_error::kWrite);
  EXPECT_EQ(walker_.translate(mode_, 0x00404000, {AccessType::kWrite, true}).error_code,
            pf_error::kPresent | pf_error::kWrite | pf_error::kUser);
}

TEST_F(PageWalkerTest, ReadOnlyDirectoryEntryRestrictsEveryPageBelowIt) {
  memory_.write_u32(kPd + 1 * 4, kPt | P | U);
  map(0x00405000, 0x00300000, P | W | U);
  EXPECT_FALSE(walker_.translate(mode_, 0x00405000, {AccessType::kWrite, true}).ok());
}

TEST_F(PageWalkerTest, LargePagesNeedPseAndRejectReservedBits) {
  memory_.write_u32(kPd + 3 * 4, 0x00800000 | P | W | pte::kPageSize | pte::kGlobal);
  // Without PSE the PS bit is ignored and the entry points to a page table
  // at 0x00800000, which is empty.
  auto r = walker_.translate(mode_, 0x00c12345, {AccessType::kRead, false});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error_code, 0u);
  memory_.write_u32(0x00800000 + 0x12 * 4, 0x00345000 | P);
  r = walker_.translate(mode_, 0x00c12345, {AccessType::kRead, false});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.translation->physical, 0x00345345u);
  mode_.pse = true;
  mode_.pge = true;
  r = walker_.translate(mode_, 0x00c12345, {AccessType::kWrite, false});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.translation->page_size, 4u << 20);
  EXPECT_EQ(r.translation->physical, 0x00812345u);
  EXPECT_TRUE(r.translation->global);
  EXPECT_FALSE(r.translation->pte_address.has_value());
  EXPECT_TRUE(memory_.read_u32(kPd + 3 * 4) & pte::kDirty);
  memory_.write_u32(kPd + 3 * 4, 0x00800000 | P | pte::kPageSize | (1u << 13));
  r = walker_.translate(mode_, 0x00c00000, {AccessType::kRead, false});
  EXPECT_EQ(r.error_code, pf_error::kPresent | pf_error::kReserved);
}

// The shadow MMU maps ahead of a fault only what a hardware walk would
// set no bit for: A at the directory and the table level alike.
TEST_F(PageWalkerTest, AccessedMeansABitAtEveryLevelBeforeTheWalk) {
  map(0x00407000, 0x00300000, P | W | pte::kAccessed);
  EXPECT_FALSE(walker_.probe(mode_, 0x00407000, {AccessType::kRead, false}).translation->accessed)
      << "the directory entry's A is clear";
  memory_.write_u32(kPd + 4, kPt | P | W | U | pte::kAccessed);
  EXPECT_TRUE(walker_.probe(mode_, 0x00407000, {AccessType::kRead, false}).translation->accessed);
  map(0x00408000, 0x00301000, P | W);
  EXPECT_FALSE(
      walker_.translate(mode_, 0x00408000, {AccessType::kRead, false}).translation->accessed)
      << "before the walk that set it";
  EXPECT_TRUE(walker_.probe(mode_, 0x00408000, {AccessType::kRead, false}).translation->accessed);
}

TEST_F(PageWalkerTest, ProbeDoesNotTouchGuestMemory) {
  map(0x00406000, 0x00300000, P | W);
  ASSERT_TRUE(walker_.probe(mode_, 0x00406000, {AccessType::kWrite, false}).ok());
  EXPECT_EQ(pte_of(0x00406000), 0x00300000u | P | W);
}

TEST_F(PageWalkerTest, TablesOutsideRamReadAsNotPresent) {
  memory_.write_u32(kPd + 5 * 4, 0xF0000000 | P | W);
  EXPECT_FALSE(walker_.translate(mode_, 0x01400000, {AccessType::kRead, false}).ok());
  mode_.cr3 = 0xF0000000;
  EXPECT_FALSE(walker_.translate(mode_, 0, {AccessType::kRead, false}).ok());
}

}  // namespace
}  // namespace bt86
