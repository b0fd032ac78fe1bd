#include "devices/rtc_cmos.h"

#include <gtest/gtest.h>

#include "tests/unit/devices/device_test_support.h"

namespace bt86 {
namespace {

constexpr int64_t kNsPerSecond = 1'000'000'000;
// Friday 2024-03-15 13:45:30 UTC.
constexpr int64_t kStartUnixSeconds = 1'710'510'330;
constexpr uint64_t kMiB = 1024 * 1024;

class RtcCmosTest : public ::testing::Test {
 protected:
  RtcCmosTest() { bus.attach(RtcCmos::kBase, RtcCmos::kPortCount, rtc); }

  uint8_t cmos(uint8_t index) {
    io.outb(0x70, index);
    return io.inb(0x71);
  }
  void set_cmos(uint8_t index, uint8_t value) {
    io.outb(0x70, index);
    io.outb(0x71, value);
  }
  void advance(uint64_t ns) {
    clock.advance(ns);
    rtc.advance_to(clock.now_ns());
  }
  bool irq() const { return irqs.levels[8]; }

  DebugLog log;
  Bus bus{"port", log};
  test::PortIo io{bus};
  ManualClock clock;
  FixedWallClock wall{kStartUnixSeconds * kNsPerSecond};
  test::RecordingIrqSink irqs;
  RtcCmos rtc{clock, wall, 48 * kMiB, IrqLine(irqs, 8), log};
};

TEST_F(RtcCmosTest, TimeInBcd24HourByDefault) {
  EXPECT_EQ(cmos(0x0B) & 0x06, 0x02);
  EXPECT_EQ(cmos(0x00), 0x30);
  EXPECT_EQ(cmos(0x02), 0x45);
  EXPECT_EQ(cmos(0x04), 0x13);
  EXPECT_EQ(cmos(0x06), 0x06);  // Friday; Sunday is 1.
  EXPECT_EQ(cmos(0x07), 0x15);
  EXPECT_EQ(cmos(0x08), 0x03);
  EXPECT_EQ(cmos(0x09), 0x24);
  EXPECT_EQ(cmos(0x32), 0x20);
  EXPECT_EQ(cmos(0x0D), 0x80);
}

TEST_F(RtcCmosTest, TimeInBinaryAnd12HourFormats) {
  set_cmos(0x0B, 0x06);  // Binary, 24 h.
  EXPECT_EQ(cmos(0x00), 30);
  EXPECT_EQ(cmos(0x04), 13);
  EXPECT_EQ(cmos(0x09), 24);
  set_cmos(0x0B, 0x00);  // BCD, 12 h: 1 PM.
  EXPECT_EQ(cmos(0x04), 0x81);
  set_cmos(0x0B, 0x04);  // Binary, 12 h.
  EXPECT_EQ(cmos(0x04), 0x81);
}

TEST_F(RtcCmosTest, TimeAdvancesWithTheClock) {
  clock.advance(90 * kNsPerSecond);
  EXPECT_EQ(cmos(0x00), 0x00);
  EXPECT_EQ(cmos(0x02), 0x47);
  clock.advance(11 * 3600 * kNsPerSecond);  // Past midnight.
  EXPECT_EQ(cmos(0x04), 0x00);
  EXPECT_EQ(cmos(0x07), 0x16);
  EXPECT_EQ(cmos(0x06), 0x07);
}

TEST_F(RtcCmosTest, UipOnlyJustBeforeEachSecond) {
  EXPECT_EQ(cmos(0x0A) & 0x80, 0);
  clock.set(kNsPerSecond - 300'000);
  EXPECT_EQ(cmos(0x0A) & 0x80, 0);
  clock.set(kNsPerSecond - 200'000);
  EXPECT_EQ(cmos(0x0A), 0x80 | 0x26);
  clock.set(kNsPerSecond);
  EXPECT_EQ(cmos(0x0A) & 0x80, 0);
}

TEST_F(RtcCmosTest, SetBitFreezesTimeForWritingAndRestartsIt) {
  set_cmos(0x0B, 0x82);
  set_cmos(0x04, 0x08);
  set_cmos(0x00, 0x00);
  clock.advance(5 * kNsPerSecond - 200'000);
  EXPECT_EQ(cmos(0x0A) & 0x80, 0);  // No updates, no UIP.
  EXPECT_EQ(cmos(0x00), 0x00);
  set_cmos(0x0B, 0x02);
  EXPECT_EQ(cmos(0x04), 0x08);
  EXPECT_EQ(cmos(0x02), 0x45);
  clock.advance(kNsPerSecond);
  EXPECT_EQ(cmos(0x00), 0x01);
  EXPECT_EQ(rtc.guest_unix_ns() / kNsPerSecond, kStartUnixSeconds - 5 * 3600 - 30 + 1);
}

TEST_F(RtcCmosTest, WritingATimeRegisterWhileRunningMovesTheClock) {
  set_cmos(0x02, 0x00);
  EXPECT_EQ(cmos(0x02), 0x00);
  EXPECT_EQ(cmos(0x04), 0x13);
  EXPECT_EQ(cmos(0x00), 0x30);
}

TEST_F(RtcCmosTest, UpdateInterruptAndRegisterCClears) {
  set_cmos(0x0A, 0x20);  // No periodic rate: only UF can be set.
  set_cmos(0x0B, 0x12);  // UIE.
  ASSERT_TRUE(rtc.next_deadline_ns().has_value());
  EXPECT_EQ(*rtc.next_deadline_ns(), static_cast<uint64_t>(kNsPerSecond));
  advance(kNsPerSecond - 1);
  EXPECT_FALSE(irq());
  advance(1);
  EXPECT_TRUE(irq());
  EXPECT_FALSE(rtc.next_deadline_ns().has_value());
  EXPECT_EQ(cmos(0x0C), 0x90);
  EXPECT_FALSE(irq());
  EXPECT_EQ(cmos(0x0C), 0x00);
  EXPECT_EQ(*rtc.next_deadline_ns(), static_cast<uint64_t>(2 * kNsPerSecond));
}

TEST_F(RtcCmosTest, PeriodicInterruptDeadlinesFollowRegisterA) {
  set_cmos(0x0B, 0x42);                          // PIE; register A's rate 6 is 1024 Hz.
  EXPECT_EQ(*rtc.next_deadline_ns(), 976'563u);  // ceil(1e9 / 1024).
  advance(976'563);
  EXPECT_TRUE(irq());
  EXPECT_EQ(cmos(0x0C), 0xC0);
  EXPECT_FALSE(irq());
  EXPECT_EQ(*rtc.next_deadline_ns(), 1'953'125u);
  set_cmos(0x0A, 0x2F);  // Rate 15: 2 Hz.
  EXPECT_EQ(*rtc.next_deadline_ns(), 500'000'000u);
  set_cmos(0x0A, 0x21);  // Rate 1 acts as 8: 256 Hz.
  EXPECT_EQ(*rtc.next_deadline_ns(), 3'906'250u);
  set_cmos(0x0A, 0x20);  // Rate 0: off.
  EXPECT_FALSE(rtc.next_deadline_ns().has_value());
}

TEST_F(RtcCmosTest, FlagsAreSetEvenWhenTheirInterruptIsDisabled) {
  clock.advance(kNsPerSecond);
  EXPECT_EQ(cmos(0x0C), 0x50);  // PF and UF, no IRQF.
  EXPECT_FALSE(irq());
}

TEST_F(RtcCmosTest, AlarmInterrupt) {
  set_cmos(0x0A, 0x20);
  set_cmos(0x01, 0x35);
  set_cmos(0x03, 0x45);
  set_cmos(0x05, 0x13);
  set_cmos(0x0B, 0x22);  // AIE.
  advance(4 * kNsPerSecond);
  EXPECT_FALSE(irq());
  EXPECT_EQ(cmos(0x0C), 0x10);
  advance(kNsPerSecond);
  EXPECT_TRUE(irq());
  EXPECT_EQ(cmos(0x0C), 0xA0 | 0x10);
  set_cmos(0x05, 0xC0);  // Hours: don't care. 13:45:35 again only tomorrow...
  set_cmos(0x03, 0xC0);  // ...minutes too: every minute at :35.
  advance(59 * kNsPerSecond);
  EXPECT_FALSE(irq());
  advance(kNsPerSecond);
  EXPECT_TRUE(irq());
}

TEST_F(RtcCmosTest, MemorySizeFields) {
  EXPECT_EQ(cmos(0x15) | cmos(0x16) << 8, 640);
  EXPECT_EQ(cmos(0x17) | cmos(0x18) << 8, 47 * 1024);
  EXPECT_EQ(cmos(0x30) | cmos(0x31) << 8, 47 * 1024);
  EXPECT_EQ(cmos(0x34) | cmos(0x35) << 8, 32 * 16);
  unsigned sum = 0;
  for (uint8_t i = 0x10; i <= 0x2D; ++i) sum += cmos(i);
  EXPECT_EQ(cmos(0x2E) << 8 | cmos(0x2F), sum);
}

TEST(RtcCmosMemory, LargeRamSaturatesTheFields) {
  DebugLog log;
  ManualClock clock;
  FixedWallClock wall(0);
  RtcCmos rtc(clock, wall, 3072 * kMiB, IrqLine(), log);
  Bus bus("port", log);
  bus.attach(RtcCmos::kBase, RtcCmos::kPortCount, rtc);
  test::PortIo io(bus);
  auto cmos16 = [&](uint8_t index) {
    io.outb(0x70, index);
    const uint8_t lo = io.inb(0x71);
    io.outb(0x70, index + 1);
    return lo | io.inb(0x71) << 8;
  };
  EXPECT_EQ(cmos16(0x17), 0xFFFF);
  EXPECT_EQ(cmos16(0x34), 0xBF00);  // (3 GiB - 16 MiB) / 64 KiB.
  io.outb(0x70, 0x09);
  EXPECT_EQ(io.inb(0x71), 0x70);  // 1970.
}

TEST_F(RtcCmosTest, NvramAndNmiDisableBit) {
  set_cmos(0x40, 0x5A);
  EXPECT_EQ(cmos(0x40), 0x5A);
  io.outb(0x70, 0x80 | 0x40);
  EXPECT_TRUE(rtc.nmi_disabled());
  EXPECT_EQ(io.inb(0x71), 0x5A);
  set_cmos(0x7F, 0x11);
  EXPECT_EQ(cmos(0x7F), 0x11);
  EXPECT_FALSE(rtc.nmi_disabled());
  set_cmos(0x0D, 0x00);  // Read-only.
  EXPECT_EQ(cmos(0x0D), 0x80);
}

}  // namespace
}  // namespace bt86
