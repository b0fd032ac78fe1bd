#include "devices/i8042.h"

#include <gtest/gtest.h>

#include "tests/unit/devices/device_test_support.h"

namespace bt86 {
namespace {

class I8042Test : public ::testing::Test {
 protected:
  I8042Test() { kbc.attach(bus); }

  uint8_t status() { return io.inb(0x64); }
  // Issue a controller command and read its one-byte answer, as Linux's
  // i8042_command() does: wait for OBF, then read 0x60.
  uint8_t command_with_answer(uint8_t command) {
    io.outb(0x64, command);
    EXPECT_EQ(status() & 0x01, 0x01);
    return io.inb(0x60);
  }

  DebugLog log;
  Bus bus{"port", log};
  test::PortIo io{bus};
  test::RecordingIrqSink irqs;
  test::RecordingMachineControl control;
  I8042 kbc{control, IrqLine(irqs, 1), IrqLine(irqs, 12), log};
};

TEST_F(I8042Test, StatusRegisterOfAnIdleController) {
  const uint8_t s = status();
  EXPECT_NE(s, 0xFF);         // Linux's "no controller" test.
  EXPECT_EQ(s & 0x03, 0x00);  // Nothing to read, ready for input.
  EXPECT_EQ(s & 0x10, 0x10);  // Not inhibited.
}

TEST_F(I8042Test, SelfTestAndInterfaceTests) {
  EXPECT_EQ(command_with_answer(0xAA), 0x55);
  EXPECT_EQ(command_with_answer(0xAB), 0x00);
  EXPECT_EQ(command_with_answer(0xA9), 0x00);
  EXPECT_EQ(status() & 0x01, 0x00);
}

TEST_F(I8042Test, CommandByteReadWriteAndPortDisables) {
  io.outb(0x64, 0x60);
  io.outb(0x60, 0x44);
  EXPECT_EQ(command_with_answer(0x20), 0x44);
  io.outb(0x64, 0xAD);
  io.outb(0x64, 0xA7);
  EXPECT_EQ(command_with_answer(0x20), 0x44 | 0x10 | 0x20);
  io.outb(0x64, 0xAE);
  io.outb(0x64, 0xA8);
  EXPECT_EQ(command_with_answer(0x20), 0x44);
}

TEST_F(I8042Test, AuxLoopbackRaisesIrq12AndSetsAuxb) {
  io.outb(0x64, 0xD3);
  io.outb(0x60, 0x5A);
  EXPECT_EQ(status() & 0x21, 0x21);
  EXPECT_TRUE(irqs.levels[12]);
  EXPECT_FALSE(irqs.levels[1]);
  EXPECT_EQ(io.inb(0x60), 0x5A);
  EXPECT_FALSE(irqs.levels[12]);
}

TEST_F(I8042Test, KeyboardBytesRaiseIrq1OnlyWhenEnabled) {
  io.outb(0x64, 0x60);
  io.outb(0x60, 0x44);  // Keyboard interrupt off.
  io.outb(0x64, 0xD2);
  io.outb(0x60, 0x1C);
  EXPECT_FALSE(irqs.levels[1]);
  io.outb(0x64, 0x60);
  io.outb(0x60, 0x45);  // Interrupt on with the byte waiting.
  EXPECT_TRUE(irqs.levels[1]);
  EXPECT_EQ(io.inb(0x60), 0x1C);
  EXPECT_FALSE(irqs.levels[1]);
}

TEST_F(I8042Test, DeviceCommandsTimeOutWithNoDeviceAttached) {
  io.outb(0x60, 0xF2);  // Keyboard "get ID".
  EXPECT_EQ(status() & 0x41, 0x41);
  EXPECT_EQ(io.inb(0x60), 0xFE);
  EXPECT_EQ(status() & 0x41, 0x00);
  io.outb(0x64, 0xD4);
  io.outb(0x60, 0xFF);  // Mouse reset.
  EXPECT_EQ(status() & 0x61, 0x61);
  EXPECT_EQ(io.inb(0x60), 0xFE);
}

TEST_F(I8042Test, ResetPulseRequestsAReset) {
  io.outb(0x64, 0xFE);
  EXPECT_EQ(control.resets, 1);
  io.outb(0x64, 0xFF);  // Pulses nothing.
  EXPECT_EQ(control.resets, 1);
}

TEST_F(I8042Test, OutputPortDrivesA20AndReset) {
  EXPECT_EQ(command_with_answer(0xD0) & 0x03, 0x03);
  io.outb(0x64, 0xD1);
  io.outb(0x60, 0x01);  // A20 off, reset inactive.
  EXPECT_EQ(control.a20, std::vector<bool>{false});
  EXPECT_EQ(control.resets, 0);
  EXPECT_EQ(command_with_answer(0xD0) & 0x03, 0x01);
  io.outb(0x64, 0xDF);
  EXPECT_EQ(control.a20, (std::vector<bool>{false, true}));
  io.outb(0x64, 0xD1);
  io.outb(0x60, 0x02);  // Reset line low.
  EXPECT_EQ(control.resets, 1);
}

TEST_F(I8042Test, CommandFlagTracksTheLastWrite) {
  io.outb(0x64, 0x60);
  EXPECT_EQ(status() & 0x08, 0x08);
  io.outb(0x60, 0x47);
  EXPECT_EQ(status() & 0x08, 0x00);
}

}  // namespace
}  // namespace bt86
