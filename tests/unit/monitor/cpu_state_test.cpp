#include "monitor/cpu_state.h"

#include <cstring>

#include <gtest/gtest.h>

namespace bt86 {
namespace {

TEST(CpuState, FlatSegmentCoversFourGigabytes) {
  const Segment s = flat_segment(0x23, 0x3, 3);
  EXPECT_EQ(s.selector, 0x23);
  EXPECT_EQ(s.base, 0u);
  EXPECT_EQ(s.limit, 0xFFFFFFFFu);
  EXPECT_EQ(s.dpl, 3);
  EXPECT_TRUE(s.present && s.s && s.db && s.granularity);
  EXPECT_FALSE(s.unusable);
}

TEST(CpuState, FpuResetStateHasTheArchitecturalDefaults) {
  const FpuState f = FpuState::reset_state();
  uint16_t fcw;
  uint32_t mxcsr;
  std::memcpy(&fcw, &f.fxsave[0], 2);
  std::memcpy(&mxcsr, &f.fxsave[24], 4);
  EXPECT_EQ(fcw, 0x037F);
  EXPECT_EQ(mxcsr, 0x1F80u);
  EXPECT_EQ(f.fxsave[4], 0) << "abridged tag word: all empty";
}

TEST(CpuState, EqualityComparesEveryPart) {
  CpuState a;
  CpuState b;
  EXPECT_EQ(a, b);
  b.segment(SegReg::kFs).base = 0x1000;
  EXPECT_NE(a, b);
  b = a;
  b.fpu.fxsave[100] = 1;
  EXPECT_NE(a, b);
  b = a;
  b.events.interrupt = 0x20;
  EXPECT_NE(a, b);
  b = a;
  b.reg(Gpr::kEdi) = 7;
  EXPECT_NE(a, b);
  EXPECT_EQ(b.gpr[7], 7u);
}

}  // namespace
}  // namespace bt86
