// Unit tests of the native compatibility-mode runner on hand-assembled
// sequences whose outcome is known from the SDM.
#include "runtime/native_compat_runner.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

namespace bt86 {
namespace {

constexpr uint32_t kCode = 0x1000;
constexpr uint32_t kData = 0x8000;
constexpr uint32_t kReadOnlyPage = 0xC000;
constexpr uint32_t kStackTop = 0xF000;
constexpr uint32_t kMemory = 0x10000;

class NativeRunnerTest : public ::testing::Test {
 protected:
  NativeRunnerTest() : runner_(signals_, {.memory_size = kMemory, .timeout_ms = 200}) {}

  FlatRunResult run(const std::vector<uint8_t>& code, CpuState s = {}) {
    std::memcpy(runner_.memory().data() + kCode, code.data(), code.size());
    s.eip = kCode;
    s.reg(Gpr::kEsp) = kStackTop;
    return runner_.run(s);
  }

  HostSignalThread signals_;
  NativeCompatRunner runner_;
};

TEST_F(NativeRunnerTest, ArithmeticEndsAtHlt) {
  CpuState s;
  s.reg(Gpr::kEbx) = 0xFFFFFFFF;
  // mov eax, 5; add eax, ebx; hlt
  FlatRunResult r = run({0xB8, 5, 0, 0, 0, 0x01, 0xD8, 0xF4}, s);
  EXPECT_EQ(r.stop, FlatRunResult::Stop::kHalt);
  EXPECT_EQ(r.state.reg(Gpr::kEax), 4u);
  EXPECT_EQ(r.state.eip, kCode + 7);
  EXPECT_TRUE(r.state.eflags & eflags::kCf);
  EXPECT_FALSE(r.state.eflags & eflags::kZf);
  EXPECT_EQ(r.state.reg(Gpr::kEsp), kStackTop);
  EXPECT_FALSE(r.exception.has_value());
}

TEST_F(NativeRunnerTest, EflagsAndDirectionFlagAreLoaded) {
  CpuState s;
  s.eflags = eflags::kFixed1 | eflags::kCf | eflags::kDf;
  // mov eax, 0; adc eax, 0; pushfd; pop edx; hlt
  FlatRunResult r = run({0xB8, 0, 0, 0, 0, 0x83, 0xD0, 0x00, 0x9C, 0x5A, 0xF4}, s);
  ASSERT_EQ(r.stop, FlatRunResult::Stop::kHalt);
  EXPECT_EQ(r.state.reg(Gpr::kEax), 1u);
  EXPECT_TRUE(r.state.reg(Gpr::kEdx) & eflags::kDf);
  EXPECT_TRUE(r.state.reg(Gpr::kEdx) & eflags::kIf);
}

TEST_F(NativeRunnerTest, StoresAndStackLandInGuestMemory) {
  // mov dword [0x8000], 0x11223344; push 0x55; hlt
  FlatRunResult r = run({0xC7, 0x05, 0x00, 0x80, 0, 0, 0x44, 0x33, 0x22, 0x11, 0x6A, 0x55, 0xF4});
  ASSERT_EQ(r.stop, FlatRunResult::Stop::kHalt);
  uint32_t v;
  std::memcpy(&v, runner_.memory().data() + kData, 4);
  EXPECT_EQ(v, 0x11223344u);
  std::memcpy(&v, runner_.memory().data() + kStackTop - 4, 4);
  EXPECT_EQ(v, 0x55u);
  EXPECT_EQ(r.state.reg(Gpr::kEsp), kStackTop - 4);
}

TEST_F(NativeRunnerTest, DivideByZeroIsDe) {
  // xor ecx, ecx; div ecx; hlt
  FlatRunResult r = run({0x31, 0xC9, 0xF7, 0xF1, 0xF4});
  ASSERT_EQ(r.stop, FlatRunResult::Stop::kException);
  ASSERT_TRUE(r.exception.has_value());
  EXPECT_EQ(r.exception->vector, vector::kDe);
  EXPECT_FALSE(r.exception->error_code.has_value());
  EXPECT_EQ(r.state.eip, kCode + 2);
}

TEST_F(NativeRunnerTest, Ud2IsUdAndInt3IsBpAfterTheInstruction) {
  FlatRunResult r = run({0x0F, 0x0B, 0xF4});
  ASSERT_EQ(r.stop, FlatRunResult::Stop::kException);
  EXPECT_EQ(r.exception->vector, vector::kUd);
  EXPECT_EQ(r.state.eip, kCode);
  r = run({0x90, 0xCC, 0xF4});
  ASSERT_EQ(r.stop, FlatRunResult::Stop::kException);
  EXPECT_EQ(r.exception->vector, vector::kBp);
  EXPECT_EQ(r.state.eip, kCode + 2);
}

TEST_F(NativeRunnerTest, AccessOutsideTheImageIsNotPresentPf) {
  // mov eax, [0x12345]; hlt
  FlatRunResult r = run({0xA1, 0x45, 0x23, 0x01, 0x00, 0xF4});
  ASSERT_EQ(r.stop, FlatRunResult::Stop::kException);
  EXPECT_EQ(r.exception->vector, vector::kPf);
  EXPECT_EQ(r.exception->error_code, 0u);
  EXPECT_EQ(r.exception->fault_address, 0x12345u);
  // Wrapping below zero: mov [0xFFFFFFF0], eax
  r = run({0xA3, 0xF0, 0xFF, 0xFF, 0xFF, 0xF4});
  ASSERT_EQ(r.stop, FlatRunResult::Stop::kException);
  EXPECT_EQ(r.exception->error_code, 2u);
  EXPECT_EQ(r.exception->fault_address, 0xFFFFFFF0u);
}

TEST_F(NativeRunnerTest, WriteToReadOnlyPageIsPresentWritePf) {
  runner_.set_page_access(kReadOnlyPage, 0x1000, PageAccess::kRead);
  // mov eax, [0xC010]; mov [0xC010], eax; hlt
  FlatRunResult r = run({0xA1, 0x10, 0xC0, 0, 0, 0xA3, 0x10, 0xC0, 0, 0, 0xF4});
  ASSERT_EQ(r.stop, FlatRunResult::Stop::kException);
  EXPECT_EQ(r.exception->vector, vector::kPf);
  EXPECT_EQ(r.exception->error_code, 3u);
  EXPECT_EQ(r.exception->fault_address, 0xC010u);
  EXPECT_EQ(r.state.eip, kCode + 5);
  runner_.set_page_access(kReadOnlyPage, 0x1000, PageAccess::kNone);
  r = run({0xA1, 0x10, 0xC0, 0, 0, 0xF4});
  EXPECT_EQ(r.exception->error_code, 0u);
  runner_.set_page_access(kReadOnlyPage, 0x1000, PageAccess::kReadWrite);
  r = run({0xA3, 0x10, 0xC0, 0, 0, 0xF4});
  EXPECT_EQ(r.stop, FlatRunResult::Stop::kHalt);
}

TEST_F(NativeRunnerTest, MisalignedMovapsIsGpZero) {
  // movaps xmm0, [0x8001]; hlt
  FlatRunResult r = run({0x0F, 0x28, 0x05, 0x01, 0x80, 0, 0, 0xF4});
  ASSERT_EQ(r.stop, FlatRunResult::Stop::kException);
  EXPECT_EQ(r.exception->vector, vector::kGp);
  EXPECT_EQ(r.exception->error_code, 0u);
}

TEST_F(NativeRunnerTest, SseAndX87StateRoundTrips) {
  CpuState s;
  const uint32_t lane = 0x01020304;
  std::memcpy(&s.fpu.fxsave[160], &lane, 4);  // XMM0 lane 0
  s.reg(Gpr::kEax) = 0x10;
  // movd xmm1, eax; paddd xmm0, xmm1; fld1; fld1; faddp; hlt
  FlatRunResult r = run(
      {0x66, 0x0F, 0x6E, 0xC8, 0x66, 0x0F, 0xFE, 0xC1, 0xD9, 0xE8, 0xD9, 0xE8, 0xDE, 0xC1, 0xF4},
      s);
  ASSERT_EQ(r.stop, FlatRunResult::Stop::kHalt);
  uint32_t x0;
  std::memcpy(&x0, &r.state.fpu.fxsave[160], 4);
  EXPECT_EQ(x0, lane + 0x10);
  uint16_t fsw;
  std::memcpy(&fsw, &r.state.fpu.fxsave[2], 2);
  EXPECT_EQ((fsw >> 11) & 7, 7);  // TOP after one net push.
  // ST0 = 2.0 in 80-bit format: mantissa 0x8000000000000000, exponent 0x4000.
  uint16_t exponent;
  std::memcpy(&exponent, &r.state.fpu.fxsave[32 + 8], 2);
  EXPECT_EQ(exponent, 0x4000);
  // The VMM's own FPU state survived.
  volatile double x = 2.0;
  EXPECT_DOUBLE_EQ(std::sqrt(x), 1.4142135623730951);
}

TEST_F(NativeRunnerTest, EndlessLoopTimesOut) {
  FlatRunResult r = run({0xEB, 0xFE});
  EXPECT_EQ(r.stop, FlatRunResult::Stop::kStopRequested);
  EXPECT_EQ(r.state.eip, kCode);
}

TEST_F(NativeRunnerTest, ReservedMxcsrBitsAreRejected) {
  CpuState s;
  const uint32_t bad = 0xFFFFFFFF;
  std::memcpy(&s.fpu.fxsave[24], &bad, 4);
  EXPECT_THROW(run({0xF4}, s), std::invalid_argument);
}

}  // namespace
}  // namespace bt86
