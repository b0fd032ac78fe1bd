#include "devices/debug_exit.h"

#include <gtest/gtest.h>

#include <array>

#include "tests/unit/devices/device_test_support.h"

namespace bt86 {
namespace {

class DebugExitTest : public ::testing::Test {
 protected:
  DebugExitTest() { bus.attach(DebugExit::kBase, DebugExit::kPortCount, debug_exit); }

  DebugLog log;
  Bus bus{"port", log};
  test::PortIo io{bus};
  test::RecordingMachineControl control;
  DebugExit debug_exit{control};
};

TEST_F(DebugExitTest, ByteWritesExitWithValueShiftedAndOred) {
  io.outb(0xF4, 0x00);
  io.outb(0xF4, 0x10);
  io.outb(0xF4, 0x01);
  EXPECT_EQ(control.exits, (std::vector<int>{1, 0x21, 3}));
}

TEST_F(DebugExitTest, WideWritesUseTheWholeValueLikeQemu) {
  io.outl(0xF4, 0x00000031);
  const std::array<uint8_t, 2> word{0x05, 0x00};
  bus.write(0xF4, word);
  EXPECT_EQ(control.exits, (std::vector<int>{0x63, 0x0B}));
  EXPECT_EQ(io.inl(0xF4), 0u);
}

TEST(DebugExitCode, MatchesTheMonitorsEncoding) {
  EXPECT_EQ(debug_exit_code(0), 1);
  EXPECT_EQ(debug_exit_code(0x7F), 0xFF);
  EXPECT_EQ(debug_exit_code(0x1FF), 0x1FF);
}

}  // namespace
}  // namespace bt86
