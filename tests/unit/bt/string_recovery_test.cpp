// Precise state after a fault in the middle of a string instruction that
// uses only one of ESI/EDI: the other one must come back untouched.
#include <gtest/gtest.h>

#include <cstring>

#include "runtime/flat_harness.h"

namespace bt86 {
namespace {

TEST(StringRecovery, StosFaultKeepsEsi) {
  FlatHarness h({.memory_size = 1 << 20});
  const uint8_t code[] = {0xF3, 0xAB, 0xF4};  // rep stosd; hlt
  std::memcpy(h.memory().data() + 0x1000, code, sizeof code);
  h.set_page_access(0x9000, 0x1000, PageAccess::kNone);
  CpuState s = FlatHarness::initial_state(0x1000, 0x80000);
  s.reg(Gpr::kEdi) = 0x8FF8;
  s.reg(Gpr::kEcx) = 16;
  s.reg(Gpr::kEsi) = 0x12345678;
  const FlatRunResult r = h.run(s);
  ASSERT_EQ(r.stop, FlatRunResult::Stop::kException);
  EXPECT_EQ(r.exception->vector, vector::kPf);
  EXPECT_EQ(r.state.reg(Gpr::kEdi), 0x9000u);
  EXPECT_EQ(r.state.reg(Gpr::kEcx), 14u);
  EXPECT_EQ(r.state.reg(Gpr::kEsi), 0x12345678u);
}

TEST(StringRecovery, LodsFaultKeepsEdi) {
  FlatHarness h({.memory_size = 1 << 20});
  const uint8_t code[] = {0xF3, 0xAD, 0xF4};  // rep lodsd; hlt
  std::memcpy(h.memory().data() + 0x1000, code, sizeof code);
  h.set_page_access(0x9000, 0x1000, PageAccess::kNone);
  CpuState s = FlatHarness::initial_state(0x1000, 0x80000);
  s.reg(Gpr::kEsi) = 0x8FFC;
  s.reg(Gpr::kEcx) = 4;
  s.reg(Gpr::kEdi) = 0xCAFEF00D;
  const FlatRunResult r = h.run(s);
  ASSERT_EQ(r.stop, FlatRunResult::Stop::kException);
  EXPECT_EQ(r.state.reg(Gpr::kEsi), 0x9000u);
  EXPECT_EQ(r.state.reg(Gpr::kEdi), 0xCAFEF00Du);
}

}  // namespace
}  // namespace bt86
