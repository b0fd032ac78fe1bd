#include <gtest/gtest.h>

#include "runtime/system/event_delivery.h"
#include "system_test_context.h"

namespace bt86::test {
namespace {

using Kind = SystemOutcome::Kind;

class FarTransfersTest : public testing::Test {
 protected:
  SystemTestContext ctx;
  CpuState& cpu = ctx.cpu();
  uint32_t esp() { return cpu.reg(Gpr::kEsp); }
  void push(uint32_t v) {
    cpu.reg(Gpr::kEsp) -= 4;
    ctx.ram().write_u32(esp(), v);
  }
  static std::vector<uint8_t> far_pointer(uint8_t opcode, uint32_t offset, uint16_t selector) {
    return {opcode,
            static_cast<uint8_t>(offset),
            static_cast<uint8_t>(offset >> 8),
            static_cast<uint8_t>(offset >> 16),
            static_cast<uint8_t>(offset >> 24),
            static_cast<uint8_t>(selector),
            static_cast<uint8_t>(selector >> 8)};
  }
  static void expect_fault(const SystemOutcome& o, uint8_t vec, uint32_t error) {
    ASSERT_EQ(o.kind, Kind::kException);
    EXPECT_EQ(o.exception.vector, vec);
    EXPECT_EQ(o.exception.error_code, error);
  }
};

TEST_F(FarTransfersTest, DirectFarJmpLoadsCsWithRplSetToCpl) {
  ASSERT_EQ(execute(ctx, far_pointer(0xEA, 0x123456, sel::kCode0)).kind, Kind::kContinue);
  EXPECT_EQ(cpu.eip, 0x123456u);
  EXPECT_EQ(cpu.segment(SegReg::kCs).selector, sel::kCode0);
  EXPECT_EQ(cpu.cpl(), 0);
}

TEST_F(FarTransfersTest, FarJmpChecks) {
  expect_fault(execute(ctx, far_pointer(0xEA, 0, 0)), vector::kGp, 0);
  expect_fault(execute(ctx, far_pointer(0xEA, 0, sel::kData0)), vector::kGp, sel::kData0);
  expect_fault(execute(ctx, far_pointer(0xEA, 0, sel::kCode3)), vector::kGp, sel::kCode3 & ~3);
  expect_fault(execute(ctx, far_pointer(0xEA, 0, sel::kNotPresentCode)), vector::kNp,
               sel::kNotPresentCode);
  EXPECT_EQ(cpu.eip, 0x100000u);
}

TEST_F(FarTransfersTest, ConformingTargetKeepsTheCallersCpl) {
  ctx.enter_cpl3();
  ASSERT_EQ(execute(ctx, far_pointer(0xEA, 0x1000, sel::kConformingCode)).kind, Kind::kContinue);
  EXPECT_EQ(cpu.cpl(), 3);
  EXPECT_EQ(cpu.segment(SegReg::kCs).selector, sel::kConformingCode | 3);
}

TEST_F(FarTransfersTest, IndirectFarCallPushesCsAndEipAndRetFarReturns) {
  cpu.reg(Gpr::kEbx) = 0x5000;
  ctx.ram().write_u32(0x5000, 0x200000);
  ctx.ram().write_u16(0x5004, sel::kCode0);
  ASSERT_EQ(execute(ctx, {0xFF, 0x1B}).kind, Kind::kContinue);  // call far [ebx]
  EXPECT_EQ(cpu.eip, 0x200000u);
  EXPECT_EQ(esp(), 0x7800u - 8);
  EXPECT_EQ(ctx.u32(esp()), 0x100002u);
  EXPECT_EQ(ctx.u32(esp() + 4), sel::kCode0);
  ASSERT_EQ(execute(ctx, {0xCA, 0x08, 0x00}).kind, Kind::kContinue);  // retf 8
  EXPECT_EQ(cpu.eip, 0x100002u);
  EXPECT_EQ(esp(), 0x7800u + 8);
}

TEST_F(FarTransfersTest, RetFarToCpl3PopsTheOuterStackAndNullsKernelDataSegments) {
  push(sel::kData3);
  push(0x5ff0);
  push(sel::kCode3);
  push(0x400123);
  ASSERT_EQ(execute(ctx, {0xCB}).kind, Kind::kContinue);
  EXPECT_EQ(cpu.cpl(), 3);
  EXPECT_EQ(cpu.eip, 0x400123u);
  EXPECT_EQ(esp(), 0x5ff0u);
  EXPECT_EQ(cpu.segment(SegReg::kSs).selector, sel::kData3);
  EXPECT_TRUE(cpu.segment(SegReg::kDs).unusable);  // DPL 0 data at CPL 3.
}

TEST_F(FarTransfersTest, RetFarToAnInnerLevelIsGp) {
  ctx.enter_cpl3();
  push(sel::kCode0);
  push(0x1000);
  expect_fault(execute(ctx, {0xCB}), vector::kGp, sel::kCode0);
}

TEST_F(FarTransfersTest, IretAtTheSameLevelRestoresEflags) {
  push(eflags::kFixed1 | eflags::kCf | eflags::kIoplMask);
  push(sel::kCode0);
  push(0x100400);
  cpu.eflags = eflags::kFixed1;
  ASSERT_EQ(execute(ctx, {0xCF}).kind, Kind::kContinue);
  EXPECT_EQ(cpu.eip, 0x100400u);
  EXPECT_EQ(cpu.eflags, eflags::kFixed1 | eflags::kCf | eflags::kIoplMask);
  EXPECT_EQ(esp(), 0x7800u);
}

TEST_F(FarTransfersTest, IretToCpl3AfterAnInterruptFromCpl3) {
  ctx.enter_cpl3();
  ctx.set_gate(0x80, descriptor_type::kTrapGate32, sel::kCode0, 0x500000, 3);
  ASSERT_EQ(deliver_event(ctx, GuestEvent::software(0x80, EventSource::kSoftwareInterrupt, 2)).kind,
            Kind::kContinue);
  ASSERT_EQ(cpu.cpl(), 0);
  ASSERT_EQ(execute(ctx, {0xCF}).kind, Kind::kContinue);
  EXPECT_EQ(cpu.cpl(), 3);
  EXPECT_EQ(cpu.eip, 0x400002u);
  EXPECT_EQ(esp(), layout::kStack3);
  EXPECT_EQ(cpu.segment(SegReg::kSs).selector, sel::kData3);
  EXPECT_EQ(cpu.segment(SegReg::kDs).selector, sel::kData3);  // DPL 3: kept.
}

TEST_F(FarTransfersTest, IretToCpl3ChecksTheOuterStackSegment) {
  push(sel::kData0);  // SS with RPL 0 for a return to CPL 3.
  push(0x5ff0);
  push(eflags::kFixed1);
  push(sel::kCode3);
  push(0x400000);
  const uint32_t before = esp();
  expect_fault(execute(ctx, {0xCF}), vector::kGp, sel::kData0);
  EXPECT_EQ(esp(), before);
  EXPECT_EQ(cpu.cpl(), 0);
}

TEST_F(FarTransfersTest, IretAtCpl3CannotChangeIoplOrIf) {
  ctx.enter_cpl3();
  cpu.eflags = eflags::kFixed1 | eflags::kIf;
  push(eflags::kFixed1 | eflags::kIoplMask | eflags::kZf);
  push(sel::kCode3);
  push(0x400010);
  ASSERT_EQ(execute(ctx, {0xCF}).kind, Kind::kContinue);
  EXPECT_EQ(cpu.eflags, eflags::kFixed1 | eflags::kIf | eflags::kZf);
}

TEST_F(FarTransfersTest, IretToVirtual8086ModeIsAClearShutdown) {
  push(eflags::kFixed1 | eflags::kVm);
  push(sel::kCode0);
  push(0x1000);
  SystemOutcome o = execute(ctx, {0xCF});
  ASSERT_EQ(o.kind, Kind::kShutdown);
  EXPECT_NE(o.message.find("virtual-8086"), std::string::npos);
}

TEST_F(FarTransfersTest, IretWithNtReturnsToTheLinkedTask) {
  // Task B runs nested inside task A: TR=B busy, NT set, B's link = A.
  GuestMemory& ram = ctx.ram();
  ram.write_u32(layout::kTssA + 0x20, 0x100777);  // A's saved EIP.
  ram.write_u32(layout::kTssA + 0x24, eflags::kFixed1 | eflags::kIf);
  ram.write_u32(layout::kTssA + 0x38, 0x7700);  // ESP
  const uint16_t selectors[] = {sel::kData0, sel::kCode0, sel::kData0,
                                sel::kData0, sel::kData0, sel::kData0};
  for (int i = 0; i < 6; ++i) ram.write_u32(layout::kTssA + 0x48 + 4 * i, selectors[i]);
  ram.write_u16(layout::kTssB, sel::kTssA);
  Segment b = decode_segment_descriptor(ctx.gdt_raw(sel::kTssB), sel::kTssB);
  b.type = descriptor_type::kTss32Busy;
  ctx.set_gdt(sel::kTssB, b);
  cpu.tr = b;
  cpu.eflags |= eflags::kNt;
  ASSERT_EQ(execute(ctx, {0xCF}).kind, Kind::kContinue);
  EXPECT_EQ(cpu.tr.selector, sel::kTssA);
  EXPECT_EQ(cpu.eip, 0x100777u);
  EXPECT_EQ(esp(), 0x7700u);
  EXPECT_EQ(ctx.gdt_raw(sel::kTssB) >> 40 & 0xF, descriptor_type::kTss32Available);
  EXPECT_EQ(ram.read_u32(layout::kTssB + 0x20), 0x100001u);  // B resumes after iret.
  EXPECT_FALSE(ram.read_u32(layout::kTssB + 0x24) & eflags::kNt);
  EXPECT_TRUE(cpu.cr0 & cr0::kTs);
}

TEST_F(FarTransfersTest, FarJmpToAnAvailableTssSwitchesTasksWithoutNesting) {
  GuestMemory& ram = ctx.ram();
  ram.write_u32(layout::kTssB + 0x20, 0x200000);
  ram.write_u32(layout::kTssB + 0x24, eflags::kFixed1 | eflags::kZf);
  ram.write_u32(layout::kTssB + 0x28, 0x1234);  // EAX
  ram.write_u32(layout::kTssB + 0x38, layout::kStackB);
  const uint16_t selectors[] = {sel::kData0, sel::kCode0,     sel::kData0,
                                sel::kData0, sel::kSmallData, sel::kData0};
  for (int i = 0; i < 6; ++i) ram.write_u32(layout::kTssB + 0x48 + 4 * i, selectors[i]);
  ram.write_u32(layout::kTssB + 0x60, sel::kLdt);
  cpu.reg(Gpr::kEax) = 0xAAAA;
  ASSERT_EQ(execute(ctx, far_pointer(0xEA, 0, sel::kTssB)).kind, Kind::kContinue);
  EXPECT_EQ(cpu.tr.selector, sel::kTssB);
  EXPECT_EQ(cpu.eip, 0x200000u);
  EXPECT_EQ(cpu.reg(Gpr::kEax), 0x1234u);
  EXPECT_EQ(cpu.segment(SegReg::kFs).base, 0x20000u);
  EXPECT_EQ(cpu.ldtr.base, layout::kLdt);
  EXPECT_FALSE(cpu.eflags & eflags::kNt);
  EXPECT_EQ(ctx.gdt_raw(sel::kTssA) >> 40 & 0xF, descriptor_type::kTss32Available);
  EXPECT_EQ(ctx.gdt_raw(sel::kTssB) >> 40 & 0xF, descriptor_type::kTss32Busy);
  EXPECT_EQ(ram.read_u32(layout::kTssA + 0x28), 0xAAAAu);    // Saved EAX.
  EXPECT_EQ(ram.read_u32(layout::kTssA + 0x20), 0x100007u);  // After the jmp.
  // The busy TSS cannot be entered again.
  expect_fault(execute(ctx, far_pointer(0xEA, 0, sel::kTssB)), vector::kGp, sel::kTssB);
}

TEST_F(FarTransfersTest, ANewTaskWithABadStackFaultsInTheNewTask) {
  GuestMemory& ram = ctx.ram();
  ram.write_u32(layout::kTssB + 0x20, 0x200000);
  ram.write_u32(layout::kTssB + 0x24, eflags::kFixed1);
  const uint16_t selectors[] = {sel::kData0, sel::kCode0, sel::kReadOnlyData,
                                sel::kData0, sel::kData0, sel::kData0};
  for (int i = 0; i < 6; ++i) ram.write_u32(layout::kTssB + 0x48 + 4 * i, selectors[i]);
  expect_fault(execute(ctx, far_pointer(0xEA, 0, sel::kTssB)), vector::kTs, sel::kReadOnlyData);
  EXPECT_EQ(cpu.tr.selector, sel::kTssB);
  EXPECT_EQ(cpu.eip, 0x200000u);
}

TEST_F(FarTransfersTest, FarJmpThroughACallGateStaysAtTheSameLevel) {
  GateDescriptor gate;
  gate.selector = sel::kCode0;
  gate.offset = 0x300000;
  gate.type = descriptor_type::kCallGate32;
  gate.dpl = 0;
  gate.present = true;
  constexpr uint16_t kGate = 0x70;
  ctx.set_gdt_raw(kGate, encode_gate_descriptor(gate));
  ASSERT_EQ(execute(ctx, far_pointer(0xEA, 0xDEAD, kGate)).kind, Kind::kContinue);
  EXPECT_EQ(cpu.eip, 0x300000u);  // The gate's offset, not the pointer's.
  EXPECT_EQ(esp(), 0x7800u);
  ctx.enter_cpl3();
  expect_fault(execute(ctx, far_pointer(0xEA, 0, kGate | 3)), vector::kGp, kGate);  // Gate DPL 0.
}

TEST_F(FarTransfersTest, FarCallThroughACallGateToRing0SwitchesStacksAndCopiesParameters) {
  GateDescriptor gate;
  gate.selector = sel::kCode0;
  gate.offset = 0x300000;
  gate.type = descriptor_type::kCallGate32;
  gate.dpl = 3;
  gate.present = true;
  gate.parameter_count = 2;
  constexpr uint16_t kGate = 0x70;
  ctx.set_gdt_raw(kGate, encode_gate_descriptor(gate));
  ctx.enter_cpl3();
  push(0xBBBB);  // Second parameter.
  push(0xAAAA);  // First parameter.
  ASSERT_EQ(execute(ctx, far_pointer(0x9A, 0, kGate | 3)).kind, Kind::kContinue);
  EXPECT_EQ(cpu.cpl(), 0);
  EXPECT_EQ(cpu.eip, 0x300000u);
  EXPECT_EQ(esp(), layout::kStack0 - 24);
  EXPECT_EQ(ctx.u32(esp()), 0x400007u);
  EXPECT_EQ(ctx.u32(esp() + 4), sel::kCode3);
  EXPECT_EQ(ctx.u32(esp() + 8), 0xAAAAu);
  EXPECT_EQ(ctx.u32(esp() + 12), 0xBBBBu);
  EXPECT_EQ(ctx.u32(esp() + 16), layout::kStack3 - 8);
  EXPECT_EQ(ctx.u32(esp() + 20), sel::kData3);
}

}  // namespace
}  // namespace bt86::test
