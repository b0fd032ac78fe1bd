// Superblocks: a conditional branch is a side exit and translation goes on
// along its fall-through path. Checks the unit shape, exact execution
// counts per segment, precise faults and invalidation past a side exit.
#include <gtest/gtest.h>

#include "tests/unit/translator/guest_program.h"
#include "translator/translation_cache.h"
#include "translator/translator.h"

namespace bt86 {
namespace {

using namespace asmjit;
using test::assemble32;
using test::load32;

constexpr uint32_t kCode = 0x1000;
constexpr uint32_t kStack = 0x80000;
constexpr uint32_t kMemory = 1 << 20;

class VectorSource : public CodeSource {
 public:
  VectorSource(uint32_t base, std::vector<uint8_t> bytes) : base_(base), bytes_(std::move(bytes)) {}
  size_t fetch(uint32_t eip, std::span<uint8_t> buffer, uint32_t* error) override {
    *error = 0;
    if (eip < base_ || eip >= base_ + bytes_.size()) return 0;
    const size_t n = std::min(buffer.size(), bytes_.size() - (eip - base_));
    std::copy_n(bytes_.begin() + (eip - base_), n, buffer.begin());
    return n;
  }

 private:
  uint32_t base_;
  std::vector<uint8_t> bytes_;
};

// cmp; jne; add; jz; inc; ret: two side exits, then the ret ends the unit.
std::vector<uint8_t> two_branches() {
  return assemble32(kCode, [](x86::Assembler& a) {
    Label out = a.newLabel();
    a.cmp(x86::eax, x86::ebx);
    a.short_().jne(out);
    a.add(x86::eax, 1);
    a.short_().jz(out);
    a.inc(x86::ecx);
    a.bind(out);
    a.ret();
  });
}

TEST(Superblock, ConditionalBranchesAreSideExits) {
  TranslationCache cache(1 << 20);
  Translator translator(cache, {});
  VectorSource source(kCode, two_branches());
  TranslationUnit& u = translator.translate(kCode, source);
  ASSERT_EQ(u.instructions.size(), 6u);
  EXPECT_EQ(u.guest_end, kCode + static_cast<uint32_t>(two_branches().size()));
  EXPECT_EQ(u.ident_count, 3u);
  EXPECT_EQ(u.compensated_count, 3u);
  // The ret leaves through the lookup, not an exit record; the last exit is
  // the entry guard's.
  ASSERT_EQ(u.exits.size(), 3u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(cache.exit(u.exits[i]).kind, ExitKind::kDirect);
    EXPECT_EQ(cache.exit(u.exits[i]).guest_target, u.guest_end - 1);  // Both jump to the ret.
  }
  EXPECT_EQ(cache.exit(u.exits[2]).kind, ExitKind::kGuard);
  EXPECT_EQ(cache.exit(u.exits[2]).guest_target, kCode);
}

TEST(Superblock, SingleInstructionUnitsStopAtTheBranch) {
  TranslationCache cache(1 << 20);
  Translator translator(cache, {});
  VectorSource source(kCode, two_branches());
  TranslationMode mode;
  mode.single_instruction = true;
  TranslationUnit& u = translator.translate(UnitKey{kCode + 2, 0, mode.key(), {}}, mode, source);
  ASSERT_EQ(u.instructions.size(), 1u);
  ASSERT_EQ(u.exits.size(), 3u);  // Taken, not taken, and the entry guard's.
  EXPECT_EQ(cache.exit(u.exits[1]).guest_target, kCode + 4);
}

// Units entered often but left early through a side exit must not count
// the instructions they skipped.
TEST(Superblock, ExecutionCountsAreExactPerSegment) {
  FlatHarness h({.memory_size = kMemory, .count_executed = true});
  load32(h, kCode, test::emit_sum_loop);
  FlatRunResult r = h.run(FlatHarness::initial_state(kCode, kStack));
  ASSERT_EQ(r.stop, FlatRunResult::Stop::kHalt);
  EXPECT_EQ(r.state.reg(Gpr::kEax), 500500u);
  // mov, xor, 1000 x (add, dec, jnz), hlt.
  EXPECT_EQ(h.stats().executed_instructions, 3003u);
  EXPECT_EQ(h.stats().executed_ident_instructions, 2002u);
  EXPECT_EQ(h.stats().executed_compensated_instructions, 1000u);
  EXPECT_EQ(h.stats().executed_callout_instructions, 1u);
}

TEST(Superblock, FaultPastASideExitIsPrecise) {
  FlatHarness h({.memory_size = kMemory});
  h.set_page_access(0x50000, 0x1000, PageAccess::kNone);
  load32(h, kCode, [](x86::Assembler& a) {
    Label skip = a.newLabel();
    a.mov(x86::ebx, 0x50000);
    a.cmp(x86::eax, 7);
    a.short_().je(skip);
    a.mov(x86::ecx, 5);
    a.add(x86::edx, 1);
    a.mov(x86::esi, x86::dword_ptr(x86::ebx));  // at kCode + 18
    a.bind(skip);
    a.hlt();
  });
  CpuState taken = FlatHarness::initial_state(kCode, kStack);
  taken.reg(Gpr::kEax) = 7;
  FlatRunResult t = h.run(taken);
  ASSERT_EQ(t.stop, FlatRunResult::Stop::kHalt);
  EXPECT_EQ(t.state.reg(Gpr::kEcx), 0u);

  FlatRunResult f = h.run(FlatHarness::initial_state(kCode, kStack));
  ASSERT_EQ(f.stop, FlatRunResult::Stop::kException);
  EXPECT_EQ(f.exception->vector, vector::kPf);
  EXPECT_EQ(f.state.eip, kCode + 18);
  EXPECT_EQ(f.state.reg(Gpr::kEcx), 5u);
  EXPECT_EQ(f.state.reg(Gpr::kEdx), 1u);
  // add edx, 1 from 0 leaves CF, PF, AF, ZF, SF and OF clear.
  EXPECT_EQ(f.state.eflags & 0x8D5u, 0u);
}

TEST(Superblock, InvalidationPastASideExitRetranslates) {
  FlatHarness h({.memory_size = kMemory});
  load32(h, kCode, [](x86::Assembler& a) {
    Label skip = a.newLabel();
    a.cmp(x86::eax, 7);   // 3 bytes
    a.short_().je(skip);  // 2 bytes
    a.mov(x86::ecx, 1);   // at kCode + 5, immediate at + 6
    a.bind(skip);
    a.hlt();
  });
  EXPECT_EQ(h.run(FlatHarness::initial_state(kCode, kStack)).state.reg(Gpr::kEcx), 1u);
  h.memory()[kCode + 6] = 9;
  h.invalidate(kCode + 6, 1);
  EXPECT_EQ(h.run(FlatHarness::initial_state(kCode, kStack)).state.reg(Gpr::kEcx), 9u);
}

}  // namespace
}  // namespace bt86
