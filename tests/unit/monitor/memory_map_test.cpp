#include "monitor/memory_map.h"

#include <gtest/gtest.h>

namespace bt86 {
namespace {

class MemoryMapSizes : public testing::TestWithParam<uint64_t> {};

TEST_P(MemoryMapSizes, E820DescribesLowRamLegacyHoleAndHighRam) {
  const uint64_t size = GetParam();
  const MemoryMap map(size);
  const std::vector<E820Entry> expected = {
      {0, 0xA0000, e820::kRam},
      {0xA0000, 0x60000, e820::kReserved},
      {0x100000, size - 0x100000, e820::kRam},
  };
  EXPECT_EQ(map.e820(), expected);
  EXPECT_EQ(map.ram_top(), size);
  EXPECT_TRUE(map.is_ram(0x100000, size - 0x100000));
  EXPECT_FALSE(map.is_ram(0x9F000, 0x2000));
  EXPECT_FALSE(map.is_ram(size - 4, 8));
  ASSERT_NE(map.find(0xB8000), nullptr);
  EXPECT_EQ(map.find(0xB8000)->kind, RegionKind::kReserved);
  ASSERT_NE(map.find(0xFEC00000), nullptr);
  EXPECT_EQ(map.find(0xFEC00000)->kind, RegionKind::kMmio);
}

INSTANTIATE_TEST_SUITE_P(Sizes, MemoryMapSizes,
                         testing::Values(16ull << 20, 256ull << 20, 1ull << 30, 3ull << 30));

TEST(MemoryMap, RejectsSizesOutsideTheSupportedRange) {
  EXPECT_THROW(MemoryMap(15ull << 20), MemoryMapError);
  EXPECT_THROW(MemoryMap((3ull << 30) + 4096), MemoryMapError);
  EXPECT_THROW(MemoryMap((64ull << 20) + 1), MemoryMapError);
  try {
    MemoryMap map(8ull << 20);
    FAIL();
  } catch (const MemoryMapError& e) {
    EXPECT_NE(std::string(e.what()).find("16 MiB"), std::string::npos) << e.what();
  }
}

TEST(ParseMemorySize, AcceptsSuffixes) {
  EXPECT_EQ(parse_memory_size("256M"), 256ull << 20);
  EXPECT_EQ(parse_memory_size("1G"), 1ull << 30);
  EXPECT_EQ(parse_memory_size("65536k"), 64ull << 20);
  EXPECT_EQ(parse_memory_size("16777216"), 16ull << 20);
}

TEST(ParseMemorySize, RejectsGarbage) {
  for (const char* bad :
       {"", "M", "12X", "1.5G", "-1G", "1GB", "99999999999999999999G", "18014398509481984G"}) {
    EXPECT_THROW(parse_memory_size(bad), MemoryMapError) << bad;
  }
}

}  // namespace
}  // namespace bt86
