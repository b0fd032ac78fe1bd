// The generator's own checks: every form encodes, generated sequences never
// read undefined flags, and the native runner gives the same result twice
// for the same sequence and state (the oracle is deterministic).
#include "tests/difftest/sequence.h"

#include <gtest/gtest.h>

#include <cstring>

#include "runtime/native_compat_runner.h"

namespace bt86::difftest {
namespace {

TEST(SequenceGenerator, EveryClassEncodesAndIsFlagValid) {
  for (int c = 0; c < kNumFormClasses; ++c) {
    SequenceGenerator gen(1234 + c, static_cast<FormClass>(c));
    for (int i = 0; i < 300; ++i) {
      Sequence seq = gen.generate(12);
      EXPECT_TRUE(analyze_flags(seq).valid) << class_name(static_cast<FormClass>(c));
      EncodedSequence enc = encode(seq, kCodeBase);
      ASSERT_EQ(enc.record_offsets.size(), seq.records.size() + 1);
      EXPECT_EQ(enc.bytes.back(), 0xF4);
    }
  }
}

TEST(FlagAnalysis, UndefinedFlagsFollowTheLastWriter) {
  const auto forms = instruction_forms();
  auto find = [&](std::string_view name) {
    for (const auto& f : forms)
      if (f.name == name) return &f;
    return static_cast<const InstructionForm*>(nullptr);
  };
  Sequence seq;
  Record mul{.form = find("mul"),
             .steps = {},
             .reads = 0,
             .defines = eflags::kCf | eflags::kOf,
             .undefs = eflags::kZf | eflags::kSf | eflags::kAf | eflags::kPf};
  Record add{.form = find("add"), .steps = {}, .reads = 0, .defines = eflags::kArith, .undefs = 0};
  Record jz{.form = find("jcc"), .steps = {}, .reads = eflags::kZf, .defines = 0, .undefs = 0};
  seq.records = {mul, jz};
  EXPECT_FALSE(analyze_flags(seq).valid);
  seq.records = {mul, add, jz};
  FlagAnalysis a = analyze_flags(seq);
  EXPECT_TRUE(a.valid);
  EXPECT_EQ(a.undefined_before[1], mul.undefs);
  EXPECT_EQ(a.undefined_before[3], 0u);
}

TEST(NativeOracle, GeneratedSequencesAreDeterministic) {
  HostSignalThread signals;
  NativeCompatRunner native(signals, {.memory_size = kMemorySize, .timeout_ms = 1000});
  native.set_page_access(kReadOnlyPage, 0x1000, PageAccess::kRead);
  native.set_page_access(kNoAccessPage, 0x1000, PageAccess::kNone);
  for (int i = 0; i < 2000; ++i) {
    SequenceGenerator gen(99 + i, std::nullopt);
    CpuState s;
    std::vector<uint8_t> image(kMemorySize);
    gen.randomize(s, image);
    EncodedSequence enc = encode(gen.generate(1 + i % 16), kCodeBase);
    std::memcpy(image.data() + kCodeBase, enc.bytes.data(), enc.bytes.size());
    s.eip = kCodeBase;
    FlatRunResult r[2];
    std::vector<uint8_t> after[2];
    for (int k = 0; k < 2; ++k) {
      std::memcpy(native.memory().data(), image.data(), image.size());
      r[k] = native.run(s);
      after[k].assign(native.memory().begin(), native.memory().end());
    }
    ASSERT_NE(r[0].stop, FlatRunResult::Stop::kStopRequested) << "sequence " << i;
    EXPECT_EQ(r[0].stop, r[1].stop);
    EXPECT_EQ(r[0].exception, r[1].exception);
    EXPECT_EQ(r[0].state.gpr, r[1].state.gpr);
    EXPECT_EQ(r[0].state.eip, r[1].state.eip);
    EXPECT_EQ(after[0], after[1]) << "sequence " << i;
  }
}

}  // namespace
}  // namespace bt86::difftest
