#include "devices/pit_8254.h"

#include <gtest/gtest.h>

#include "devices/system_control_port_b.h"
#include "tests/unit/devices/device_test_support.h"

namespace bt86 {
namespace {

// The host time at which `ticks` PIT clocks have elapsed since time 0.
uint64_t ns_at_tick(uint64_t ticks) {
  return (ticks * 1'000'000'000ULL + Pit8254::kFrequencyHz - 1) / Pit8254::kFrequencyHz;
}

class Pit8254Test : public ::testing::Test {
 protected:
  Pit8254Test() {
    bus.attach(Pit8254::kBase, Pit8254::kPortCount, pit);
    bus.attach(SystemControlPortB::kBase, SystemControlPortB::kPortCount, port_b);
  }

  void program(uint8_t control, uint16_t count) {
    io.outb(0x43, control);
    io.outb(0x40 + (control >> 6), static_cast<uint8_t>(count));
    io.outb(0x40 + (control >> 6), static_cast<uint8_t>(count >> 8));
  }
  uint16_t read_count(unsigned channel) {
    const uint8_t lsb = io.inb(0x40 + channel);
    return static_cast<uint16_t>(lsb | io.inb(0x40 + channel) << 8);
  }
  int irq0_edges() const { return irqs.rising_edges[0]; }

  DebugLog log;
  Bus bus{"port", log};
  test::PortIo io{bus};
  ManualClock clock;
  test::RecordingIrqSink irqs;
  Pit8254 pit{clock, IrqLine(irqs, 0), log};
  SystemControlPortB port_b{pit};
};

TEST_F(Pit8254Test, NoDeadlineUntilProgrammed) {
  EXPECT_FALSE(pit.next_deadline_ns().has_value());
  io.outb(0x43, 0x34);
  EXPECT_FALSE(pit.next_deadline_ns().has_value());
}

TEST_F(Pit8254Test, Mode2RaisesIrq0OncePerPeriod) {
  program(0x34, 1193);  // Channel 0, LSB/MSB, mode 2: Linux's HZ=1000 tick.
  ASSERT_TRUE(pit.next_deadline_ns().has_value());
  EXPECT_EQ(*pit.next_deadline_ns(), ns_at_tick(1193));
  clock.set(*pit.next_deadline_ns() - 1);
  pit.advance_to(clock.now_ns());
  EXPECT_EQ(irq0_edges(), 0);
  clock.set(ns_at_tick(1193));
  pit.advance_to(clock.now_ns());
  EXPECT_EQ(irq0_edges(), 1);
  EXPECT_FALSE(irqs.levels[0]);  // An edge, not a level.
  EXPECT_EQ(*pit.next_deadline_ns(), ns_at_tick(2 * 1193));
  clock.set(ns_at_tick(2 * 1193));
  pit.advance_to(clock.now_ns());
  EXPECT_EQ(irq0_edges(), 2);
}

TEST_F(Pit8254Test, Mode3PeriodsAndCountingByTwo) {
  program(0x36, 1000);
  EXPECT_EQ(*pit.next_deadline_ns(), ns_at_tick(1000));
  clock.set(ns_at_tick(100));
  EXPECT_EQ(read_count(0), 800);
  EXPECT_TRUE(pit.output(0));  // First half of the period: high.
  clock.set(ns_at_tick(600));
  EXPECT_FALSE(pit.output(0));
  clock.set(ns_at_tick(1000));
  pit.advance_to(clock.now_ns());
  EXPECT_EQ(irq0_edges(), 1);
  EXPECT_EQ(*pit.next_deadline_ns(), ns_at_tick(2000));
}

TEST_F(Pit8254Test, FallingBehindCoalescesIntoOneEdge) {
  program(0x34, 1000);
  clock.set(ns_at_tick(10'500));
  pit.advance_to(clock.now_ns());
  EXPECT_EQ(irq0_edges(), 1);
  EXPECT_EQ(*pit.next_deadline_ns(), ns_at_tick(11'000));
}

TEST_F(Pit8254Test, CountDecreasesWithTimeInMode2) {
  program(0x34, 1000);
  EXPECT_EQ(read_count(0), 1000);
  clock.set(ns_at_tick(250));
  EXPECT_EQ(read_count(0), 750);
  clock.set(ns_at_tick(1250));
  EXPECT_EQ(read_count(0), 750);  // Reloaded after 1000.
}

TEST_F(Pit8254Test, CounterLatchHoldsTheValueUntilRead) {
  program(0x34, 1000);
  clock.set(ns_at_tick(100));
  io.outb(0x43, 0x00);  // Latch channel 0.
  clock.set(ns_at_tick(300));
  io.outb(0x43, 0x00);  // A second latch before reading is ignored.
  EXPECT_EQ(read_count(0), 900);
  EXPECT_EQ(read_count(0), 700);  // Latch consumed: live again.
}

TEST_F(Pit8254Test, ReadBackStatusThenCount) {
  io.outb(0x43, 0x34);
  io.outb(0x43, 0xE2);                                 // Read-back status only, channel 0.
  EXPECT_EQ(io.inb(0x40), 0x40 | 0x30 | 0x04 | 0x80);  // Null count, LSB/MSB, mode 2, OUT high.
  io.outb(0x40, 0xE8);
  io.outb(0x40, 0x03);  // 1000.
  clock.set(ns_at_tick(10));
  io.outb(0x43, 0xC2);  // Read-back count and status, channel 0.
  EXPECT_EQ(io.inb(0x40), 0x30 | 0x04 | 0x80);
  clock.set(ns_at_tick(500));
  EXPECT_EQ(read_count(0), 990);
}

TEST_F(Pit8254Test, LsbOnlyAccess) {
  io.outb(0x43, 0x14);  // Channel 0, LSB only, mode 2.
  io.outb(0x40, 200);
  clock.set(ns_at_tick(50));
  EXPECT_EQ(io.inb(0x40), 150);
  EXPECT_EQ(io.inb(0x40), 150);
}

TEST_F(Pit8254Test, Mode0IsAOneShot) {
  program(0x30, 100);
  EXPECT_FALSE(pit.output(0));
  EXPECT_EQ(*pit.next_deadline_ns(), ns_at_tick(100));
  clock.set(ns_at_tick(100));
  pit.advance_to(clock.now_ns());
  EXPECT_EQ(irq0_edges(), 1);
  EXPECT_TRUE(pit.output(0));
  EXPECT_FALSE(pit.next_deadline_ns().has_value());
  clock.set(ns_at_tick(150));
  EXPECT_EQ(read_count(0), static_cast<uint16_t>(100 - 150));  // Keeps counting, wraps.
  pit.advance_to(ns_at_tick(100'000));
  EXPECT_EQ(irq0_edges(), 1);
}

TEST_F(Pit8254Test, Channel2GateAndOut2ThroughPort61LikeLinuxTscCalibration) {
  // arch/x86/kernel/tsc.c pit_calibrate_tsc(): gate high, speaker off, then
  // mode 0 on channel 2 and wait for OUT2.
  io.outb(0x61, (io.inb(0x61) & ~0x02) | 0x01);
  program(0xB0, 1000);
  EXPECT_EQ(io.inb(0x61) & 0x20, 0);
  clock.set(ns_at_tick(999));
  EXPECT_EQ(io.inb(0x61) & 0x20, 0);
  clock.set(ns_at_tick(1000));
  EXPECT_EQ(io.inb(0x61) & 0x21, 0x21);
  EXPECT_EQ(irq0_edges(), 0);  // Channel 2 has no IRQ.
}

TEST_F(Pit8254Test, Channel2GateLowStopsTheCount) {
  io.outb(0x61, 0x00);
  program(0xB0, 1000);
  clock.set(ns_at_tick(500));
  EXPECT_EQ(read_count(2), 1000);
  io.outb(0x61, 0x01);
  clock.set(ns_at_tick(800));
  EXPECT_EQ(read_count(2), 700);
  io.outb(0x61, 0x00);
  clock.set(ns_at_tick(5000));
  EXPECT_EQ(read_count(2), 700);
  EXPECT_FALSE(pit.output(2));
}

TEST_F(Pit8254Test, Port61RefreshBitTogglesOnReads) {
  const uint8_t a = io.inb(0x61) & 0x10;
  const uint8_t b = io.inb(0x61) & 0x10;
  const uint8_t c = io.inb(0x61) & 0x10;
  EXPECT_NE(a, b);
  EXPECT_EQ(a, c);
  io.outb(0x61, 0x03);
  EXPECT_TRUE(port_b.speaker_enabled());
  EXPECT_EQ(io.inb(0x61) & 0x03, 0x03);
}

TEST_F(Pit8254Test, ReprogrammingChannel0CancelsThePendingIrq) {
  program(0x34, 1000);
  io.outb(0x43, 0x30);
  EXPECT_FALSE(pit.next_deadline_ns().has_value());
  clock.set(ns_at_tick(5000));
  pit.advance_to(clock.now_ns());
  EXPECT_EQ(irq0_edges(), 0);
}

}  // namespace
}  // namespace bt86
