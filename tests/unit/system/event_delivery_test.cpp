#include "runtime/system/event_delivery.h"

#include <gtest/gtest.h>

#include "system_test_context.h"

namespace bt86::test {
namespace {

using Kind = SystemOutcome::Kind;
constexpr uint8_t kInt32 = descriptor_type::kInterruptGate32;
constexpr uint8_t kTrap32 = descriptor_type::kTrapGate32;

class EventDeliveryTest : public testing::Test {
 protected:
  SystemTestContext ctx;
  CpuState& cpu = ctx.cpu();
  uint32_t esp() { return cpu.reg(Gpr::kEsp); }
  uint32_t stack(int slot) { return ctx.u32(esp() + 4 * slot); }
};

TEST_F(EventDeliveryTest, InterruptGateAtCpl0PushesEflagsCsEipAndClearsIf) {
  ctx.set_gate(0x20, kInt32, sel::kCode0, 0x500000, 0);
  cpu.eflags |= eflags::kTf | eflags::kNt;
  const uint32_t old_flags = cpu.eflags;
  ASSERT_EQ(deliver_event(ctx, GuestEvent::external_interrupt(0x20)).kind, Kind::kContinue);
  EXPECT_EQ(cpu.eip, 0x500000u);
  EXPECT_EQ(esp(), 0x7800u - 12);
  EXPECT_EQ(stack(0), 0x100000u);
  EXPECT_EQ(stack(1), sel::kCode0);
  EXPECT_EQ(stack(2), old_flags);
  EXPECT_FALSE(cpu.eflags & eflags::kIf);
  EXPECT_FALSE(cpu.eflags & (eflags::kTf | eflags::kNt));
  EXPECT_EQ(cpu.segment(SegReg::kSs).selector, sel::kData0);
}

TEST_F(EventDeliveryTest, TrapGateKeepsIf) {
  ctx.set_gate(0x21, kTrap32, sel::kCode0, 0x500000, 0);
  ASSERT_EQ(deliver_event(ctx, GuestEvent::external_interrupt(0x21)).kind, Kind::kContinue);
  EXPECT_TRUE(cpu.eflags & eflags::kIf);
}

TEST_F(EventDeliveryTest, FromCpl3SwitchesToTheTssStackAndPushesFiveWords) {
  ctx.enter_cpl3();
  ctx.set_gate(0x80, kTrap32, sel::kCode0, 0x500000, 3);
  const uint32_t flags = cpu.eflags;
  auto event = GuestEvent::software(0x80, EventSource::kSoftwareInterrupt, 2);
  ASSERT_EQ(deliver_event(ctx, event).kind, Kind::kContinue);
  EXPECT_EQ(cpu.cpl(), 0);
  EXPECT_EQ(cpu.segment(SegReg::kCs).selector, sel::kCode0);
  EXPECT_EQ(cpu.segment(SegReg::kSs).selector, sel::kData0);
  EXPECT_EQ(esp(), layout::kStack0 - 20);
  EXPECT_EQ(stack(0), 0x400002u);
  EXPECT_EQ(stack(1), sel::kCode3);
  EXPECT_EQ(stack(2), flags);
  EXPECT_EQ(stack(3), layout::kStack3);
  EXPECT_EQ(stack(4), sel::kData3);
  EXPECT_GT(ctx.segment_changes, 0);
}

TEST_F(EventDeliveryTest, ExceptionErrorCodeIsPushedLast) {
  ctx.set_gate(vector::kGp, kInt32, sel::kCode0, 0x500000, 0);
  ASSERT_EQ(deliver_event(ctx, GuestEvent::exception({vector::kGp, 0x1234, {}})).kind,
            Kind::kContinue);
  EXPECT_EQ(stack(0), 0x1234u);
  EXPECT_EQ(stack(1), 0x100000u);
}

TEST_F(EventDeliveryTest, PageFaultLoadsCr2) {
  ctx.set_gate(vector::kPf, kInt32, sel::kCode0, 0x500000, 0);
  ASSERT_EQ(deliver_event(ctx, GuestEvent::exception({vector::kPf, 6, 0xdeadb000})).kind,
            Kind::kContinue);
  EXPECT_EQ(cpu.cr2, 0xdeadb000u);
  EXPECT_EQ(stack(0), 6u);
}

TEST_F(EventDeliveryTest, SixteenBitGatePushesWords) {
  ctx.set_gate(0x22, descriptor_type::kInterruptGate16, sel::kCode0, 0x1234, 0);
  ASSERT_EQ(deliver_event(ctx, GuestEvent::external_interrupt(0x22)).kind, Kind::kContinue);
  EXPECT_EQ(cpu.eip, 0x1234u);
  EXPECT_EQ(esp(), 0x7800u - 6);
  EXPECT_EQ(ctx.ram().read_u16(esp()), 0x0000u);  // Low word of EIP 0x100000.
  EXPECT_EQ(ctx.ram().read_u16(esp() + 2), sel::kCode0);
}

TEST_F(EventDeliveryTest, IntNFromCpl3ThroughADpl0GateIsGpWithTheGateErrorCode) {
  ctx.enter_cpl3();
  ctx.set_gate(0x30, kInt32, sel::kCode0, 0x500000, 0);
  ctx.set_gate(vector::kGp, kInt32, sel::kCode0, 0x600000, 0);
  auto event = GuestEvent::software(0x30, EventSource::kSoftwareInterrupt, 2);
  ASSERT_EQ(deliver_event(ctx, event).kind, Kind::kContinue);
  EXPECT_EQ(cpu.eip, 0x600000u);
  EXPECT_EQ(stack(0), 0x30u * 8 + 2);
  EXPECT_EQ(stack(1), 0x400000u);  // The int instruction: #GP is a fault.
}

TEST_F(EventDeliveryTest, NotPresentGateIsNpWithIdtAndExtBits) {
  ctx.set_gate(0x23, kInt32, sel::kCode0, 0x500000, 0, false);
  ctx.set_gate(vector::kNp, kInt32, sel::kCode0, 0x600000, 0);
  ASSERT_EQ(deliver_event(ctx, GuestEvent::external_interrupt(0x23)).kind, Kind::kContinue);
  EXPECT_EQ(cpu.eip, 0x600000u);
  EXPECT_EQ(stack(0), 0x23u * 8 + 2 + 1);
}

TEST_F(EventDeliveryTest, VectorBeyondTheIdtLimitIsGp) {
  cpu.idtr.limit = 0x20 * 8 - 1;
  ctx.set_gate(vector::kGp, kInt32, sel::kCode0, 0x600000, 0);
  ASSERT_EQ(deliver_event(ctx, GuestEvent::external_interrupt(0x20)).kind, Kind::kContinue);
  EXPECT_EQ(cpu.eip, 0x600000u);
  EXPECT_EQ(stack(0), 0x20u * 8 + 2 + 1);
}

TEST_F(EventDeliveryTest, NotPresentHandlerSegmentIsNpWithTheSelector) {
  ctx.set_gate(0x24, kInt32, sel::kNotPresentCode, 0x500000, 0);
  ctx.set_gate(vector::kNp, kInt32, sel::kCode0, 0x600000, 0);
  ASSERT_EQ(deliver_event(ctx, GuestEvent::external_interrupt(0x24)).kind, Kind::kContinue);
  EXPECT_EQ(stack(0), sel::kNotPresentCode + 1u);
}

TEST_F(EventDeliveryTest, ABadRing0StackSegmentInTheTssIsTs) {
  ctx.ram().write_u32(layout::kTssA + 8, sel::kReadOnlyData);
  ctx.enter_cpl3();
  ctx.set_gate(0x20, kInt32, sel::kCode0, 0x500000, 0);
  ctx.set_gate(vector::kTs, kInt32, sel::kCode3, 0x500000, 3);  // DPL 3: no stack switch.
  ASSERT_EQ(deliver_event(ctx, GuestEvent::external_interrupt(0x20)).kind, Kind::kContinue);
  EXPECT_EQ(stack(0), sel::kReadOnlyData + 1u);  // EXT: an external event's delivery failed.
  EXPECT_EQ(esp(), layout::kStack3 - 16);
}

TEST_F(EventDeliveryTest, SameLevelFramePastTheStackLimitIsSsWithExt) {
  // ESP above the limit of an expand-up stack: the first push is outside.
  cpu.segment(SegReg::kSs) = data_segment(sel::kData0, 0, 0x7803, 0);
  cpu.reg(Gpr::kEsp) = 0x7808;
  ctx.set_gate(0x20, kInt32, sel::kCode0, 0x500000, 0);
  ctx.set_gate(vector::kSs, kInt32, sel::kCode0, 0x600000, 0);
  SystemOutcome o = deliver_event(ctx, GuestEvent::external_interrupt(0x20));
  // #SS's own frame does not fit either: #SS then #SS is a double fault,
  // whose frame does not fit: a triple fault, with cpu() untouched.
  ASSERT_EQ(o.kind, Kind::kShutdown);
  EXPECT_NE(o.message.find("#SS(0x1)"), std::string::npos) << o.message;
  EXPECT_EQ(esp(), 0x7808u);
}

TEST_F(EventDeliveryTest, TwoContributoryExceptionsBecomeADoubleFault) {
  ctx.set_gate(vector::kGp, kInt32, sel::kCode0, 0x500000, 0, false);
  ctx.set_gate(vector::kDf, kInt32, sel::kCode0, 0x700000, 0);
  ASSERT_EQ(deliver_event(ctx, GuestEvent::exception({vector::kGp, 0, {}})).kind, Kind::kContinue);
  EXPECT_EQ(cpu.eip, 0x700000u);
  EXPECT_EQ(stack(0), 0u);
}

TEST_F(EventDeliveryTest, PageFaultsOnTheKernelStackEscalateToDoubleFault) {
  // A user-mode #GP whose ring-0 stack is unmapped: the frame push raises
  // #PF (delivered serially after a contributory fault), whose own push
  // raises #PF again: #PF then #PF is a double fault, sent through a task
  // gate to a task with a good stack, as Linux i386 does.
  ctx.enable_paging();
  ctx.map(layout::kStack0 - 0x1000, 0, 0);
  ctx.enter_cpl3();
  ctx.set_gate(vector::kGp, kInt32, sel::kCode0, 0x500000, 0);
  ctx.set_gate(vector::kPf, kInt32, sel::kCode0, 0x500100, 0);
  ctx.set_gate(vector::kDf, descriptor_type::kTaskGate, sel::kTssB, 0, 0);
  GuestMemory& ram = ctx.ram();
  ram.write_u32(layout::kTssB + 0x1C, layout::kPageDirectory);  // CR3
  ram.write_u32(layout::kTssB + 0x20, 0x700000);                // EIP
  ram.write_u32(layout::kTssB + 0x24, eflags::kFixed1);
  ram.write_u32(layout::kTssB + 0x38, layout::kStackB);  // ESP
  const uint16_t selectors[] = {sel::kData0, sel::kCode0, sel::kData0,
                                sel::kData0, sel::kData0, sel::kData0};
  for (int i = 0; i < 6; ++i) ram.write_u32(layout::kTssB + 0x48 + 4 * i, selectors[i]);
  ASSERT_EQ(deliver_event(ctx, GuestEvent::exception({vector::kGp, 0, {}})).kind, Kind::kContinue);
  EXPECT_EQ(cpu.eip, 0x700000u);
  EXPECT_EQ(cpu.tr.selector, sel::kTssB);
  EXPECT_EQ(cpu.cr2, layout::kStack0 - 4);
  EXPECT_EQ(esp(), layout::kStackB - 4);
  EXPECT_EQ(stack(0), 0u);  // #DF's error code.
  EXPECT_TRUE(cpu.eflags & eflags::kNt);
  EXPECT_EQ(ram.read_u16(layout::kTssB), sel::kTssA);        // Back link.
  EXPECT_EQ(ctx.gdt_raw(sel::kTssB) >> 40 & 0xF, 11u);       // Busy.
  EXPECT_EQ(ram.read_u32(layout::kTssA + 0x20), 0x400000u);  // Saved EIP.
  EXPECT_EQ(ram.read_u32(layout::kTssA + 0x4C), sel::kCode3);
}

TEST_F(EventDeliveryTest, AFaultDeliveringTheDoubleFaultIsATripleFault) {
  ctx.enable_paging();
  ctx.map(0x7000, 0, 0);  // The current (ring-0) stack page.
  ctx.set_gate(vector::kGp, kInt32, sel::kCode0, 0x500000, 0);
  ctx.set_gate(vector::kPf, kInt32, sel::kCode0, 0x500100, 0);
  ctx.set_gate(vector::kDf, kInt32, sel::kCode0, 0x500200, 0);
  const uint32_t eip = cpu.eip;
  SystemOutcome o = deliver_event(ctx, GuestEvent::exception({vector::kPf, 0, 0x1000}));
  ASSERT_EQ(o.kind, Kind::kShutdown);
  EXPECT_NE(o.message.find("triple fault"), std::string::npos) << o.message;
  EXPECT_NE(o.message.find("#DF"), std::string::npos) << o.message;
  EXPECT_EQ(cpu.eip, eip);
}

TEST_F(EventDeliveryTest, VirtualEightySixModeIsAClearShutdown) {
  cpu.eflags |= eflags::kVm;
  SystemOutcome o = deliver_event(ctx, GuestEvent::external_interrupt(0x20));
  ASSERT_EQ(o.kind, Kind::kShutdown);
  EXPECT_NE(o.message.find("virtual-8086"), std::string::npos);
}

}  // namespace
}  // namespace bt86::test
