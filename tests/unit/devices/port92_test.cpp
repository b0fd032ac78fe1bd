#include "devices/port92.h"

#include <gtest/gtest.h>

#include "tests/unit/devices/device_test_support.h"

namespace bt86 {
namespace {

class Port92Test : public ::testing::Test {
 protected:
  Port92Test() { bus.attach(Port92::kBase, Port92::kPortCount, port92); }

  DebugLog log;
  Bus bus{"port", log};
  test::PortIo io{bus};
  test::RecordingMachineControl control;
  Port92 port92{control};
};

TEST_F(Port92Test, A20StartsEnabledAndFollowsBit1) {
  EXPECT_EQ(io.inb(0x92), 0x02);
  io.outb(0x92, 0x00);
  EXPECT_EQ(control.a20, std::vector<bool>{false});
  EXPECT_FALSE(port92.a20());
  io.outb(0x92, 0x00);  // No change, no call.
  io.outb(0x92, 0x02);
  EXPECT_EQ(control.a20, (std::vector<bool>{false, true}));
  EXPECT_EQ(control.resets, 0);
}

TEST_F(Port92Test, Bit0RequestsResetAndReadsBackClear) {
  io.outb(0x92, io.inb(0x92) | 0x01);
  EXPECT_EQ(control.resets, 1);
  EXPECT_EQ(io.inb(0x92), 0x02);
  EXPECT_TRUE(control.a20.empty());
}

}  // namespace
}  // namespace bt86
