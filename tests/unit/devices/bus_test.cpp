#include "devices/bus.h"

#include <gtest/gtest.h>

#include <array>
#include <vector>

namespace bt86 {
namespace {

class RecordingDevice : public BusDevice {
 public:
  std::string_view name() const override { return "recorder"; }
  void read(uint64_t offset, std::span<uint8_t> data) override {
    reads.push_back(offset);
    for (auto& b : data) b = static_cast<uint8_t>(offset);
  }
  void write(uint64_t offset, std::span<const uint8_t> data) override {
    writes.push_back({offset, data[0]});
  }
  std::vector<uint64_t> reads;
  std::vector<std::pair<uint64_t, uint8_t>> writes;
};

TEST(Bus, DispatchesOffsetsWithinTheDeviceRange) {
  DebugLog log;
  Bus bus("port", log);
  RecordingDevice a, b;
  bus.attach(0x3F8, 8, a);
  bus.attach(0x20, 2, b);
  uint8_t v = 0;
  EXPECT_TRUE(bus.read(0x3FD, {&v, 1}));
  EXPECT_EQ(v, 5);
  const uint8_t w = 0x42;
  EXPECT_TRUE(bus.write(0x21, {&w, 1}));
  ASSERT_EQ(b.writes.size(), 1u);
  EXPECT_EQ(b.writes[0].first, 1u);
  EXPECT_EQ(b.writes[0].second, 0x42);
  EXPECT_EQ(bus.find(0x3F8), &a);
  EXPECT_EQ(bus.find(0x3F7), nullptr);
  EXPECT_EQ(bus.find(0x400), nullptr);
}

TEST(Bus, UnclaimedReadsAllOnesAndDropsWrites) {
  DebugLog log;
  Bus bus("port", log);
  std::array<uint8_t, 4> v{};
  EXPECT_FALSE(bus.read(0x1234, v));
  EXPECT_EQ(v, (std::array<uint8_t, 4>{0xFF, 0xFF, 0xFF, 0xFF}));
  const uint8_t w = 1;
  EXPECT_FALSE(bus.write(0x1234, {&w, 1}));
}

TEST(Bus, RejectsOverlapsAndEmptyRanges) {
  DebugLog log;
  Bus bus("port", log);
  RecordingDevice a, b;
  bus.attach(0x40, 4, a);
  EXPECT_THROW(bus.attach(0x43, 1, b), std::invalid_argument);
  EXPECT_THROW(bus.attach(0x3F, 2, b), std::invalid_argument);
  EXPECT_THROW(bus.attach(0x50, 0, b), std::invalid_argument);
  EXPECT_NO_THROW(bus.attach(0x44, 1, b));
  EXPECT_NO_THROW(bus.attach(0x3F, 1, b));
}

}  // namespace
}  // namespace bt86
