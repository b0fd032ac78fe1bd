#include <gtest/gtest.h>

#include "runtime/system/guest_event.h"
#include "runtime/system/segment_loads.h"
#include "system_test_context.h"

namespace bt86::test {
namespace {

using Kind = SystemOutcome::Kind;

class SegmentInstructionsTest : public testing::Test {
 protected:
  SystemTestContext ctx;
  CpuState& cpu = ctx.cpu();

  SystemOutcome mov_ds(uint16_t selector) {
    cpu.reg(Gpr::kEax) = selector;
    return execute(ctx, {0x8E, 0xD8});
  }
  SystemOutcome mov_ss(uint16_t selector) {
    cpu.reg(Gpr::kEax) = selector;
    return execute(ctx, {0x8E, 0xD0});
  }
  static void expect_fault(const SystemOutcome& o, uint8_t vec, uint32_t error) {
    ASSERT_EQ(o.kind, Kind::kException);
    EXPECT_EQ(o.exception.vector, vec);
    EXPECT_EQ(o.exception.error_code, error);
  }
};

TEST_F(SegmentInstructionsTest, MovDsLoadsTheHiddenPartAndSetsTheAccessedBit) {
  ASSERT_EQ(mov_ds(sel::kSmallData).kind, Kind::kContinue);
  const Segment& ds = cpu.segment(SegReg::kDs);
  EXPECT_EQ(ds.selector, sel::kSmallData);
  EXPECT_EQ(ds.base, 0x20000u);
  EXPECT_EQ(ds.limit, 0xFFu);
  EXPECT_TRUE(ds.type & descriptor_type::kAccessed);
  EXPECT_TRUE(ctx.gdt_raw(sel::kSmallData) & (1ull << 40));
  EXPECT_EQ(cpu.eip, 0x100002u);
  EXPECT_GT(ctx.segment_changes, 0);
}

TEST_F(SegmentInstructionsTest, TheAccessedBitStoreToATracedGdtPageIsReported) {
  ctx.mmu().trace_frame(layout::kGdt >> 12, TraceKind::kDescriptorTable);
  ASSERT_EQ(mov_ds(sel::kSmallData).kind, Kind::kContinue);
  EXPECT_EQ(ctx.traced_writes, (std::vector<uint32_t>{layout::kGdt + sel::kSmallData + 5}));
  ASSERT_EQ(mov_ds(sel::kSmallData).kind, Kind::kContinue);  // Already accessed: no store.
  EXPECT_EQ(ctx.traced_writes.size(), 1u);
}

TEST_F(SegmentInstructionsTest, NullSelectorInDsIsAllowedAndUnusable) {
  ASSERT_EQ(mov_ds(0).kind, Kind::kContinue);
  EXPECT_TRUE(cpu.segment(SegReg::kDs).unusable);
}

TEST_F(SegmentInstructionsTest, NullSelectorInSsIsGpZero) {
  expect_fault(mov_ss(0), vector::kGp, 0);
  EXPECT_EQ(cpu.eip, 0x100000u);
  EXPECT_EQ(cpu.segment(SegReg::kSs).selector, sel::kData0);
}

TEST_F(SegmentInstructionsTest, SelectorBeyondTheGdtLimitIsGpWithTheSelector) {
  expect_fault(mov_ds(0x1F8 + 3), vector::kGp, 0x1F8);
}

TEST_F(SegmentInstructionsTest, NotPresentDataIsNpAndNotPresentStackIsSs) {
  expect_fault(mov_ds(sel::kNotPresentData), vector::kNp, sel::kNotPresentData);
  expect_fault(mov_ss(sel::kNotPresentData), vector::kSs, sel::kNotPresentData);
}

TEST_F(SegmentInstructionsTest, ReadOnlyDataCannotBeTheStack) {
  expect_fault(mov_ss(sel::kReadOnlyData), vector::kGp, sel::kReadOnlyData);
  ASSERT_EQ(mov_ds(sel::kReadOnlyData).kind, Kind::kContinue);
}

TEST_F(SegmentInstructionsTest, StackSegmentNeedsRplAndDplEqualToCpl) {
  expect_fault(mov_ss(sel::kData3), vector::kGp, sel::kData3 & ~3);
  expect_fault(mov_ss(sel::kData0 | 3), vector::kGp, sel::kData0);
}

TEST_F(SegmentInstructionsTest, CodeSegmentsMustBeReadableAndNotTheStack) {
  ASSERT_EQ(mov_ds(sel::kCode0).kind, Kind::kContinue);  // Execute/read code.
  expect_fault(mov_ss(sel::kCode0), vector::kGp, sel::kCode0);
}

TEST_F(SegmentInstructionsTest, Cpl3CannotLoadAKernelDataSegment) {
  ctx.enter_cpl3();
  expect_fault(mov_ds(sel::kData0 | 3), vector::kGp, sel::kData0);
  ASSERT_EQ(mov_ds(sel::kData3).kind, Kind::kContinue);
  // Conforming code is readable from every level.
  ASSERT_EQ(mov_ds(sel::kConformingCode | 3).kind, Kind::kContinue);
}

TEST_F(SegmentInstructionsTest, RplAboveDplIsGp) {
  expect_fault(mov_ds(sel::kData0 | 2), vector::kGp, sel::kData0);
}

TEST_F(SegmentInstructionsTest, SystemDescriptorsAreNotDataSegments) {
  expect_fault(mov_ds(sel::kTssA), vector::kGp, sel::kTssA);
}

TEST_F(SegmentInstructionsTest, LdtSelectorsReadTheLdt) {
  ctx.enter_cpl3();
  ASSERT_EQ(mov_ds(sel::kLdtData).kind, Kind::kContinue);
  EXPECT_EQ(cpu.segment(SegReg::kDs).base, 0x30000u);
  cpu.ldtr = null_segment(0);
  expect_fault(mov_ds(sel::kLdtData), vector::kGp, sel::kLdtData & ~3);
}

TEST_F(SegmentInstructionsTest, MovSsOpensTheInterruptShadow) {
  ASSERT_EQ(mov_ss(sel::kData0).kind, Kind::kContinue);
  EXPECT_TRUE(cpu.events.interrupt_shadow);
}

TEST_F(SegmentInstructionsTest, MovFromSegmentZeroExtendsIntoA32BitRegister) {
  cpu.reg(Gpr::kEax) = 0xFFFFFFFF;
  ASSERT_EQ(execute(ctx, {0x8C, 0xD8}).kind, Kind::kContinue);  // mov eax, ds
  EXPECT_EQ(cpu.reg(Gpr::kEax), sel::kData0);
  cpu.reg(Gpr::kEax) = 0xFFFFFFFF;
  ASSERT_EQ(execute(ctx, {0x66, 0x8C, 0xD8}).kind, Kind::kContinue);  // mov ax, ds
  EXPECT_EQ(cpu.reg(Gpr::kEax), 0xFFFF0000u | sel::kData0);
  cpu.reg(Gpr::kEbx) = 0x5000;
  ctx.ram().write_u32(0x5000, 0xAAAAAAAA);
  ASSERT_EQ(execute(ctx, {0x8C, 0x1B}).kind, Kind::kContinue);  // mov [ebx], ds
  EXPECT_EQ(ctx.u32(0x5000), 0xAAAA0000u | sel::kData0);
}

TEST_F(SegmentInstructionsTest, MemoryOperandsHonourTheSegmentLimit) {
  ASSERT_EQ(mov_ds(sel::kSmallData).kind, Kind::kContinue);
  cpu.reg(Gpr::kEbx) = 0xFF;  // The last byte: a 2-byte read crosses the limit.
  expect_fault(execute(ctx, {0x8E, 0x03}), vector::kGp, 0);  // mov es, [ebx]
  cpu.reg(Gpr::kEbx) = 0x10;
  ctx.ram().write_u32(0x20010, sel::kData3 & ~3);
  ASSERT_EQ(execute(ctx, {0x8E, 0x03}).kind, Kind::kContinue);
  EXPECT_EQ(cpu.segment(SegReg::kEs).selector, sel::kData3 & ~3);
}

TEST_F(SegmentInstructionsTest, PopDsMovesEspOnlyOnSuccess) {
  cpu.reg(Gpr::kEsp) = 0x5000;
  ctx.ram().write_u32(0x5000, sel::kNotPresentData);
  expect_fault(execute(ctx, {0x1F}), vector::kNp, sel::kNotPresentData);
  EXPECT_EQ(cpu.reg(Gpr::kEsp), 0x5000u);
  ctx.ram().write_u32(0x5000, sel::kSmallData);
  ASSERT_EQ(execute(ctx, {0x1F}).kind, Kind::kContinue);
  EXPECT_EQ(cpu.reg(Gpr::kEsp), 0x5004u);
  EXPECT_EQ(cpu.segment(SegReg::kDs).base, 0x20000u);
}

TEST_F(SegmentInstructionsTest, StackPastAnExpandUpLimitIsSsZero) {
  Segment small_stack = data_segment(sel::kData0, 0, 0xFFF, 0);
  cpu.segment(SegReg::kSs) = small_stack;
  cpu.reg(Gpr::kEsp) = 0x1000;
  expect_fault(execute(ctx, {0x1F}), vector::kSs, 0);
}

TEST_F(SegmentInstructionsTest, LssLoadsSsAndEspTogether) {
  cpu.reg(Gpr::kEbx) = 0x5000;
  ctx.ram().write_u32(0x5000, 0x12345678);
  ctx.ram().write_u16(0x5004, sel::kData0);
  ASSERT_EQ(execute(ctx, {0x0F, 0xB2, 0x23}).kind, Kind::kContinue);  // lss esp, [ebx]
  EXPECT_EQ(cpu.reg(Gpr::kEsp), 0x12345678u);
  ctx.ram().write_u16(0x5004, sel::kNotPresentData);
  cpu.reg(Gpr::kEax) = 7;
  expect_fault(execute(ctx, {0xC5, 0x03}), vector::kNp, sel::kNotPresentData);  // lds eax, [ebx]
  EXPECT_EQ(cpu.reg(Gpr::kEax), 7u);
}

}  // namespace
}  // namespace bt86::test
