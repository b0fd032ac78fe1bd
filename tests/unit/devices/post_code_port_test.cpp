#include "devices/post_code_port.h"

#include <gtest/gtest.h>

#include "tests/unit/devices/device_test_support.h"

namespace bt86 {
namespace {

TEST(PostCodePort, ReadsReturnTheLastCode) {
  DebugLog log;
  Bus bus("port", log);
  PostCodePort post;
  bus.attach(PostCodePort::kBase, PostCodePort::kPortCount, post);
  test::PortIo io(bus);
  EXPECT_EQ(io.inb(0x80), 0x00);
  io.outb(0x80, 0x12);
  io.outb(0x80, 0x34);
  EXPECT_EQ(io.inb(0x80), 0x34);
  EXPECT_EQ(post.last_code(), 0x34);
  EXPECT_EQ(post.write_count(), 2u);
}

}  // namespace
}  // namespace bt86
