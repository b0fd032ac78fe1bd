#include "devices/pic_8259.h"

#include <gtest/gtest.h>

#include <vector>

#include "tests/unit/devices/device_test_support.h"

namespace bt86 {
namespace {

class Pic8259Test : public ::testing::Test {
 protected:
  Pic8259Test() : pic(log, [this](bool intr) { intr_changes.push_back(intr); }) { pic.attach(bus); }

  // The sequence Linux's init_8259A() writes (arch/x86/kernel/i8259.c).
  void init_like_linux(bool auto_eoi = false) {
    io.outb(0x21, 0xFF);  // Mask everything first.
    io.outb(0xA1, 0xFF);
    io.outb(0x20, 0x11);                    // ICW1: edge, cascade, ICW4 needed.
    io.outb(0x21, 0x30);                    // ICW2: vectors 0x30-0x37.
    io.outb(0x21, 0x04);                    // ICW3: slave on IRQ2.
    io.outb(0x21, auto_eoi ? 0x03 : 0x01);  // ICW4: 8086 mode (+AEOI).
    io.outb(0xA0, 0x11);
    io.outb(0xA1, 0x38);  // Vectors 0x38-0x3F.
    io.outb(0xA1, 0x02);  // Slave identity 2.
    io.outb(0xA1, 0x01);
    io.outb(0x21, 0x00);  // Unmask all.
    io.outb(0xA1, 0x00);
  }

  void eoi_master() { io.outb(0x20, 0x20); }
  void eoi_slave() { io.outb(0xA0, 0x20); }

  DebugLog log;
  Bus bus{"port", log};
  test::PortIo io{bus};
  std::vector<bool> intr_changes;
  Pic8259 pic;
};

TEST_F(Pic8259Test, LinuxInitSequenceSetsVectorBasesAndMask) {
  init_like_linux();
  EXPECT_EQ(pic.registers(false).vector_base, 0x30);
  EXPECT_EQ(pic.registers(true).vector_base, 0x38);
  EXPECT_EQ(io.inb(0x21), 0x00);
  io.outb(0x21, 0xFB);
  EXPECT_EQ(io.inb(0x21), 0xFB);
  EXPECT_FALSE(pic.interrupt_pending());
}

TEST_F(Pic8259Test, EdgeIrqIsDeliveredOnceAndEndsWithEoi) {
  init_like_linux();
  IrqLine irq0(pic, 0);
  irq0.pulse();
  EXPECT_TRUE(pic.interrupt_pending());
  EXPECT_EQ(intr_changes, std::vector<bool>{true});
  EXPECT_EQ(pic.acknowledge(), 0x30);
  EXPECT_FALSE(pic.interrupt_pending());
  io.outb(0x20, 0x0B);  // OCW3: read ISR.
  EXPECT_EQ(io.inb(0x20), 0x01);
  io.outb(0x20, 0x0A);  // OCW3: read IRR.
  EXPECT_EQ(io.inb(0x20), 0x00);
  eoi_master();
  io.outb(0x20, 0x0B);
  EXPECT_EQ(io.inb(0x20), 0x00);
  EXPECT_FALSE(pic.interrupt_pending());
}

TEST_F(Pic8259Test, EdgeNeedsANewRisingEdge) {
  init_like_linux();
  pic.set_irq(3, true);
  EXPECT_EQ(pic.acknowledge(), 0x33);
  eoi_master();
  pic.set_irq(3, true);  // Still high: no new edge.
  EXPECT_FALSE(pic.interrupt_pending());
  pic.set_irq(3, false);
  pic.set_irq(3, true);
  EXPECT_TRUE(pic.interrupt_pending());
}

TEST_F(Pic8259Test, MaskedRequestWaitsInIrrUntilUnmasked) {
  init_like_linux();
  io.outb(0x21, 0x10);  // Mask IRQ4.
  IrqLine(pic, 4).pulse();
  EXPECT_FALSE(pic.interrupt_pending());
  io.outb(0x20, 0x0A);
  EXPECT_EQ(io.inb(0x20), 0x10);
  io.outb(0x21, 0x00);
  EXPECT_TRUE(pic.interrupt_pending());
  EXPECT_EQ(pic.acknowledge(), 0x34);
}

TEST_F(Pic8259Test, LowerIrqNumberHasPriorityAndNests) {
  init_like_linux();
  IrqLine(pic, 4).pulse();
  IrqLine(pic, 1).pulse();
  EXPECT_EQ(pic.acknowledge(), 0x31);
  // IRQ4 is lower priority than the IRQ1 in service: blocked.
  EXPECT_FALSE(pic.interrupt_pending());
  // IRQ0 is higher: it nests.
  IrqLine(pic, 0).pulse();
  EXPECT_TRUE(pic.interrupt_pending());
  EXPECT_EQ(pic.acknowledge(), 0x30);
  eoi_master();  // Ends IRQ0, the highest in service.
  EXPECT_FALSE(pic.interrupt_pending());
  eoi_master();  // Ends IRQ1.
  EXPECT_EQ(pic.acknowledge(), 0x34);
}

TEST_F(Pic8259Test, SpecificEoiAndRotation) {
  init_like_linux();
  IrqLine(pic, 1).pulse();
  IrqLine(pic, 5).pulse();
  EXPECT_EQ(pic.acknowledge(), 0x31);
  io.outb(0x20, 0x61);  // Specific EOI for IRQ1.
  EXPECT_EQ(pic.acknowledge(), 0x35);
  io.outb(0x20, 0xE5);  // Rotate on specific EOI 5: IRQ5 lowest, IRQ6 highest.
  IrqLine(pic, 3).pulse();
  IrqLine(pic, 7).pulse();
  EXPECT_EQ(pic.acknowledge(), 0x37);
  io.outb(0x20, 0xC2);  // Set priority: IRQ2 lowest, IRQ3 highest.
  eoi_master();
  EXPECT_EQ(pic.acknowledge(), 0x33);
}

TEST_F(Pic8259Test, SlaveIrqCascadesThroughIrq2) {
  init_like_linux();
  IrqLine rtc(pic, 8);
  rtc.set(true);
  EXPECT_TRUE(pic.interrupt_pending());
  EXPECT_EQ(pic.acknowledge(), 0x38);
  EXPECT_EQ(pic.registers(false).isr, 0x04);
  EXPECT_EQ(pic.registers(true).isr, 0x01);
  rtc.set(false);
  IrqLine(pic, 12).pulse();  // Lower priority on the slave: blocked.
  EXPECT_FALSE(pic.interrupt_pending());
  eoi_slave();
  eoi_master();
  EXPECT_TRUE(pic.interrupt_pending());
  EXPECT_EQ(pic.acknowledge(), 0x3C);
}

TEST_F(Pic8259Test, MaskingTheCascadeBlocksTheSlave) {
  init_like_linux();
  io.outb(0x21, 0x04);
  IrqLine(pic, 9).pulse();
  EXPECT_FALSE(pic.interrupt_pending());
  io.outb(0x21, 0x00);
  EXPECT_EQ(pic.acknowledge(), 0x39);
}

TEST_F(Pic8259Test, LevelTriggeredViaElcrStaysPendingWhileHigh) {
  init_like_linux();
  io.outb(0x4D1, 0x02);  // IRQ9 level-triggered.
  EXPECT_EQ(io.inb(0x4D1), 0x02);
  io.outb(0x4D0, 0xFF);  // IRQ0-2 cannot be level on PIIX.
  EXPECT_EQ(io.inb(0x4D0), 0xF8);
  io.outb(0x4D0, 0x00);
  IrqLine line(pic, 9);
  line.set(true);
  EXPECT_EQ(pic.acknowledge(), 0x39);
  eoi_slave();
  eoi_master();
  // Still high: requested again without a new edge.
  EXPECT_TRUE(pic.interrupt_pending());
  EXPECT_EQ(pic.acknowledge(), 0x39);
  line.set(false);
  eoi_slave();
  eoi_master();
  EXPECT_FALSE(pic.interrupt_pending());
}

TEST_F(Pic8259Test, LevelRequestDroppedBeforeInta) {
  init_like_linux();
  io.outb(0x4D0, 0x20);  // IRQ5 level.
  IrqLine line(pic, 5);
  line.set(true);
  EXPECT_TRUE(pic.interrupt_pending());
  line.set(false);
  EXPECT_FALSE(pic.interrupt_pending());
  EXPECT_EQ(pic.acknowledge(), 0x37);  // Spurious IRQ7.
  EXPECT_EQ(pic.registers(false).isr, 0x00);
}

TEST_F(Pic8259Test, SpuriousIrq15LeavesSlaveIsrClear) {
  init_like_linux();
  io.outb(0x4D1, 0x02);  // IRQ9 level.
  IrqLine line(pic, 9);
  line.set(true);
  // The slave's request vanishes after its INT reached the master: the
  // master's edge-triggered IRQ2 is still latched.
  io.outb(0xA1, 0x02);
  EXPECT_TRUE(pic.interrupt_pending());
  EXPECT_EQ(pic.acknowledge(), 0x3F);
  EXPECT_EQ(pic.registers(true).isr, 0x00);
  EXPECT_EQ(pic.registers(false).isr, 0x04);
}

TEST_F(Pic8259Test, AutoEoiLeavesIsrClear) {
  init_like_linux(/*auto_eoi=*/true);
  IrqLine(pic, 1).pulse();
  EXPECT_EQ(pic.acknowledge(), 0x31);
  EXPECT_EQ(pic.registers(false).isr, 0x00);
  IrqLine(pic, 4).pulse();
  EXPECT_TRUE(pic.interrupt_pending());
}

TEST_F(Pic8259Test, PollModeReadsTheHighestRequestAndAcknowledgesIt) {
  init_like_linux();
  IrqLine(pic, 6).pulse();
  IrqLine(pic, 3).pulse();
  io.outb(0x20, 0x0C);  // OCW3: poll.
  EXPECT_EQ(io.inb(0x20), 0x83);
  EXPECT_EQ(pic.registers(false).isr, 0x08);
  eoi_master();
  io.outb(0x20, 0x0C);
  EXPECT_EQ(io.inb(0x20), 0x86);
  eoi_master();
  io.outb(0x20, 0x0C);
  EXPECT_EQ(io.inb(0x20), 0x00);
}

TEST_F(Pic8259Test, SpecialMaskModeLetsLowerPrioritiesIn) {
  init_like_linux();
  IrqLine(pic, 2 + 1).pulse();
  EXPECT_EQ(pic.acknowledge(), 0x33);
  io.outb(0x21, 0x08);  // Mask the in-service IRQ3.
  io.outb(0x20, 0x68);  // OCW3: set special mask mode.
  IrqLine(pic, 5).pulse();
  EXPECT_TRUE(pic.interrupt_pending());
  EXPECT_EQ(pic.acknowledge(), 0x35);
}

TEST_F(Pic8259Test, Icw1ClearsStateAndIgnoresNonexistentPins) {
  init_like_linux();
  IrqLine(pic, 1).pulse();
  pic.set_irq(2, true);
  pic.set_irq(16, true);
  io.outb(0x20, 0x11);
  EXPECT_FALSE(pic.interrupt_pending());
  EXPECT_EQ(pic.registers(false).irr, 0x00);
}

}  // namespace
}  // namespace bt86
