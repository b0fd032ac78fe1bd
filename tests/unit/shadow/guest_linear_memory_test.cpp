#include "shadow/guest_linear_memory.h"

#include <gtest/gtest.h>

#include <array>
#include <cstring>

namespace bt86 {
namespace {

constexpr uint32_t kPd = 0x10000;
constexpr uint32_t kPt = 0x11000;
constexpr uint32_t P = pte::kPresent, W = pte::kWritable, U = pte::kUser;

class GuestLinearMemoryTest : public ::testing::Test {
 protected:
  GuestLinearMemoryTest() : memory_(16u << 20), mmu_(memory_, {}), linear_(memory_, mmu_) {
    mode_.cr3 = kPd;
    mode_.wp = true;
    memory_.write_u32(kPd + 4, kPt | P | W | U);
  }
  void map(uint32_t linear, uint32_t physical, uint32_t flags) {
    memory_.write_u32(kPt + ((linear >> 12) & 0x3FF) * 4, (physical & 0xFFFFF000) | flags);
  }
  uint32_t pte_of(uint32_t linear) { return memory_.read_u32(kPt + ((linear >> 12) & 0x3FF) * 4); }

  GuestMemory memory_;
  ShadowMmu mmu_;
  GuestLinearMemory linear_;
  PagingMode mode_;
};

TEST_F(GuestLinearMemoryTest, AccessesCrossPagesThatAreNotPhysicallyContiguous) {
  map(0x00400000, 0x00200000, P | W);
  map(0x00401000, 0x00700000, P | W);
  const std::array<uint8_t, 4> data{1, 2, 3, 4};
  auto w = linear_.write(mode_, 0x00400ffe, data, false);
  ASSERT_FALSE(w.fault);
  EXPECT_EQ(memory_.read_u8(0x00200fff), 2);
  EXPECT_EQ(memory_.read_u8(0x00700000), 3);
  std::array<uint8_t, 4> back{};
  ASSERT_FALSE(linear_.read(mode_, 0x00400ffe, back, false));
  EXPECT_EQ(back, data);
  EXPECT_TRUE(pte_of(0x00401000) & pte::kDirty);
}

TEST_F(GuestLinearMemoryTest, AFaultOnTheSecondPageStoresNothingAndSetsNoBits) {
  map(0x00402000, 0x00200000, P | W);
  map(0x00403000, 0x00300000, P);  // Read-only under CR0.WP.
  const std::array<uint8_t, 4> data{9, 9, 9, 9};
  auto w = linear_.write(mode_, 0x00402ffe, data, false);
  ASSERT_TRUE(w.fault);
  EXPECT_EQ(w.fault->linear, 0x00403000u);
  EXPECT_EQ(w.fault->error_code, pf_error::kPresent | pf_error::kWrite);
  EXPECT_EQ(memory_.read_u8(0x00200fff), 0);
  EXPECT_FALSE(pte_of(0x00402000) & pte::kAccessed);
}

TEST_F(GuestLinearMemoryTest, UserAccessesObeyUserPermissions) {
  map(0x00404000, 0x00200000, P | W);
  std::array<uint8_t, 1> b{};
  auto fault = linear_.read(mode_, 0x00404000, b, true);
  ASSERT_TRUE(fault);
  EXPECT_EQ(fault->error_code, pf_error::kPresent | pf_error::kUser);
  EXPECT_FALSE(linear_.read(mode_, 0x00404000, b, false));
}

TEST_F(GuestLinearMemoryTest, WritesToPageTablesKeepTheShadowCoherent) {
  map(0x00405000, 0x00200000, P | W | pte::kAccessed | pte::kDirty);
  map(0x00406000, kPt, P | W);  // The page table, mapped.
  auto& space = mmu_.activate(mode_);
  ASSERT_EQ(mmu_.resolve_fault(space, WindowKind::kSupervisor, 0x00405000, true).kind,
            HiddenFaultResult::Kind::kMapped);
  const uint32_t new_pte = 0x00300000 | P | W;
  std::array<uint8_t, 4> bytes;
  std::memcpy(bytes.data(), &new_pte, 4);
  auto w = linear_.write(mode_, 0x00406000 + 5 * 4, bytes, false);
  ASSERT_FALSE(w.fault);
  EXPECT_TRUE(has_kind(w.traced, TraceKind::kPageTable));
  EXPECT_TRUE(space.mappings(WindowKind::kSupervisor).contains(0x00405))
      << "like a TLB entry, the old mapping may serve until the guest flushes";
  mmu_.flush_table_writes();
  EXPECT_FALSE(space.mappings(WindowKind::kSupervisor).contains(0x00405))
      << "the flush must drop the mapping derived from the old entry";
}

TEST_F(GuestLinearMemoryTest, PagingOffIsIdentityAndOutsideRamIsReported) {
  std::array<uint8_t, 2> b{};
  memory_.write_u8(0x1234, 0x5a);
  ASSERT_FALSE(linear_.read(std::nullopt, 0x1234, b, false));
  EXPECT_EQ(b[0], 0x5a);
  auto fault = linear_.read(std::nullopt, 0xFFFFFFF0, b, false);
  ASSERT_TRUE(fault);
  EXPECT_TRUE(fault->not_ram);
}

}  // namespace
}  // namespace bt86
