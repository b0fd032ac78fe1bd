// IDENT breadth through the flat harness: x87/SSE state across exits,
// 16-bit operand forms, SSE alignment faults.
#include <gtest/gtest.h>

#include <cstring>

#include "tests/unit/translator/guest_program.h"

namespace bt86 {
namespace {

using namespace asmjit;
using test::load32;

constexpr uint32_t kCode = 0x1000;
constexpr uint32_t kData = 0x20000;
constexpr uint32_t kStack = 0x80000;

TEST(FlatHarnessIdent, FpuAndSseStateSurviveCallouts) {
  FlatHarness h({.memory_size = 1 << 20});
  const float values[4] = {1.5f, 2.5f, 3.5f, 4.5f};
  std::memcpy(h.memory().data() + kData, values, sizeof values);
  load32(h, kCode, [](x86::Assembler& a) {
    a.fld1();
    a.fld1();
    a.movaps(x86::xmm1, x86::ptr(kData));
    a.cpuid();  // A callout between producer and consumer of FP state.
    a.faddp(x86::st1);
    a.fstp(x86::dword_ptr(kData + 0x100));
    a.addps(x86::xmm1, x86::xmm1);
    a.movups(x86::ptr(kData + 0x110), x86::xmm1);
    a.hlt();
  });
  FlatRunResult r = h.run(FlatHarness::initial_state(kCode, kStack));
  ASSERT_EQ(r.stop, FlatRunResult::Stop::kHalt);
  float sum;
  std::memcpy(&sum, h.memory().data() + kData + 0x100, 4);
  EXPECT_EQ(sum, 2.0f);
  float doubled[4];
  std::memcpy(doubled, h.memory().data() + kData + 0x110, sizeof doubled);
  EXPECT_EQ(doubled[0], 3.0f);
  EXPECT_EQ(doubled[3], 9.0f);
  // xmm1 is in the saved FXSAVE image (offset 160 + 16).
  float saved[4];
  std::memcpy(saved, r.state.fpu.fxsave.data() + 176, sizeof saved);
  EXPECT_EQ(saved[1], 5.0f);
  EXPECT_EQ(r.state.reg(Gpr::kEax) != 0, true);  // cpuid answered.
}

TEST(FlatHarnessIdent, MisalignedMovapsIsAGeneralProtectionFault) {
  FlatHarness h({.memory_size = 1 << 20});
  load32(h, kCode, [](x86::Assembler& a) {
    a.mov(x86::eax, kData + 4);
    a.movaps(x86::xmm0, x86::ptr(x86::eax));
    a.hlt();
  });
  FlatRunResult r = h.run(FlatHarness::initial_state(kCode, kStack));
  ASSERT_EQ(r.stop, FlatRunResult::Stop::kException);
  EXPECT_EQ(r.exception->vector, vector::kGp);
  EXPECT_EQ(r.exception->error_code, 0u);
  EXPECT_EQ(r.state.eip, kCode + 5);
}

TEST(FlatHarnessIdent, SixteenBitOperandForms) {
  FlatHarness h({.memory_size = 1 << 20});
  load32(h, kCode, [](x86::Assembler& a) {
    a.mov(x86::eax, 0x1234FFFF);
    a.add(x86::ax, 1);  // Carry out of 16 bits, upper half kept.
    a.setc(x86::bl);
    a.mov(x86::word_ptr(kData), x86::ax);
    a.mov(x86::ecx, 0xFFFFFFFF);
    a.mov(x86::cx, x86::word_ptr(kData));
    a.xchg(x86::ah, x86::al);
    a.hlt();
  });
  FlatRunResult r = h.run(FlatHarness::initial_state(kCode, kStack));
  ASSERT_EQ(r.stop, FlatRunResult::Stop::kHalt);
  EXPECT_EQ(r.state.reg(Gpr::kEax), 0x12340000u);
  EXPECT_EQ(r.state.reg(Gpr::kEbx) & 0xFF, 1u);
  EXPECT_EQ(r.state.reg(Gpr::kEcx), 0xFFFF0000u);
}

}  // namespace
}  // namespace bt86
