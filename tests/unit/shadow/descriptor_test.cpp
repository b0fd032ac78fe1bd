#include "shadow/descriptor.h"

#include <gtest/gtest.h>

namespace bt86 {
namespace {

TEST(Descriptor, DecodesLinuxKernelFlatCode) {
  // GDT_ENTRY_INIT(0xc09a, 0, 0xfffff): Linux's __KERNEL_CS on i386.
  const Segment cs = decode_segment_descriptor(0x00cf9a000000ffffULL, 0x60);
  EXPECT_EQ(cs.selector, 0x60);
  EXPECT_EQ(cs.base, 0u);
  EXPECT_EQ(cs.limit, 0xFFFFFFFFu);
  EXPECT_EQ(cs.type, 0xA);
  EXPECT_TRUE(cs.s);
  EXPECT_EQ(cs.dpl, 0);
  EXPECT_TRUE(cs.present);
  EXPECT_TRUE(cs.db);
  EXPECT_TRUE(cs.granularity);
  EXPECT_TRUE(is_code(cs));
  EXPECT_TRUE(is_readable(cs));
  EXPECT_FALSE(is_writable_data(cs));
}

TEST(Descriptor, DecodesAPerCpuSegmentWithBaseAndByteLimit) {
  // Base 0xc1124567, limit 0xfff byte granular, data RW accessed, DPL 0, 32-bit.
  const uint64_t raw = 0xc1409312'45670fffULL;
  const Segment fs = decode_segment_descriptor(raw, 0xd8);
  EXPECT_EQ(fs.base, 0xc1124567u);
  EXPECT_EQ(fs.limit, 0xFFFu);
  EXPECT_EQ(fs.type, 3);
  EXPECT_TRUE(is_writable_data(fs));
  EXPECT_FALSE(fs.granularity);
  EXPECT_EQ(encode_segment_descriptor(fs), raw);
}

TEST(Descriptor, SegmentRoundTrip) {
  Segment s = flat_segment(0x23, 0x3, 3);
  s.avl = true;
  s.base = 0x12345000;
  s.limit = 0x000FFFFF;
  s.granularity = false;
  EXPECT_EQ(decode_segment_descriptor(encode_segment_descriptor(s), 0x23), s);
}

TEST(Descriptor, GatesRoundTripAndTaskGatesHaveNoOffset) {
  GateDescriptor g;
  g.selector = 0x60;
  g.offset = 0xc1001234;
  g.type = descriptor_type::kTrapGate32;
  g.dpl = 3;
  g.present = true;
  const GateDescriptor back = decode_gate_descriptor(encode_gate_descriptor(g));
  EXPECT_EQ(back.selector, g.selector);
  EXPECT_EQ(back.offset, g.offset);
  EXPECT_EQ(back.type, g.type);
  EXPECT_EQ(back.dpl, 3);
  EXPECT_TRUE(back.present);
  // A task gate's offset bytes are reserved: decoding must not invent one.
  const GateDescriptor task = decode_gate_descriptor(0x0000e500'0078ffffULL);
  EXPECT_EQ(task.type, descriptor_type::kTaskGate);
  EXPECT_EQ(task.selector, 0x78);
  EXPECT_EQ(task.offset, 0u);
}

}  // namespace
}  // namespace bt86
