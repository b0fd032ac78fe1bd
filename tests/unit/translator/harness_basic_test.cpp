#include <gtest/gtest.h>

#include "tests/unit/translator/guest_program.h"

namespace bt86 {
namespace {

using namespace asmjit;
using test::load32;

constexpr uint32_t kCode = 0x1000;
constexpr uint32_t kStack = 0x80000;

TEST(FlatHarnessBasic, LoopWithChainingComputesSum) {
  FlatHarness h({.memory_size = 1 << 20, .count_executed = true});
  load32(h, kCode, test::emit_sum_loop);
  FlatRunResult r = h.run(FlatHarness::initial_state(kCode, kStack));
  ASSERT_EQ(r.stop, FlatRunResult::Stop::kHalt);
  EXPECT_EQ(r.state.reg(Gpr::kEax), 500500u);
  EXPECT_EQ(r.state.reg(Gpr::kEcx), 0u);
  EXPECT_EQ(r.state.eip, kCode + 12);  // mov(5) xor(2) add(2) dec(1) jnz(2)
  EXPECT_GE(h.stats().chained_exits, 1u);
  EXPECT_LE(h.stats().units_translated, 5u);
  EXPECT_GE(h.stats().executed_instructions, 3000u);
  EXPECT_GE(h.stats().executed_ident_instructions, 2000u);
}

TEST(FlatHarnessBasic, FlushedTranslationsAreMadeAgainFromTheCurrentBytes) {
  FlatHarness h({.memory_size = 1 << 20});
  test::load_bytes(h, kCode, {0xB8, 0x01, 0x00, 0x00, 0x00, 0xF4});  // mov eax, 1; hlt
  ASSERT_EQ(h.run(FlatHarness::initial_state(kCode, kStack)).stop, FlatRunResult::Stop::kHalt);
  const uint64_t translated = h.stats().units_translated;
  // Rewritten without invalidate(): only the flush makes the new bytes run.
  test::load_bytes(h, kCode, {0xB8, 0x02, 0x00, 0x00, 0x00, 0xF4});  // mov eax, 2; hlt
  h.flush_translations();
  const FlatRunResult r = h.run(FlatHarness::initial_state(kCode, kStack));
  ASSERT_EQ(r.stop, FlatRunResult::Stop::kHalt);
  EXPECT_EQ(r.state.reg(Gpr::kEax), 2u);
  EXPECT_GT(h.stats().units_translated, translated);
}

}  // namespace
}  // namespace bt86
