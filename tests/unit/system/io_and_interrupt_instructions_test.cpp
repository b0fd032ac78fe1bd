// Port I/O, hlt/invlpg/wbinvd, int n/int3/into, cli/sti/pushf/popf and the
// dispatcher's routing.
#include <gtest/gtest.h>

#include "runtime/system/guest_event.h"
#include "runtime/system/system_instructions.h"
#include "system_test_context.h"

namespace bt86::test {
namespace {

using Kind = SystemOutcome::Kind;
constexpr uint16_t kPort = 0x510;

// Remembers writes; reads return a counter so every read is distinguishable.
class RecordingDevice final : public BusDevice {
 public:
  std::string_view name() const override { return "recording"; }
  void read(uint64_t offset, std::span<uint8_t> data) override {
    for (auto& b : data) b = static_cast<uint8_t>(next_read++ + offset);
  }
  void write(uint64_t, std::span<const uint8_t> data) override {
    written.insert(written.end(), data.begin(), data.end());
  }
  uint8_t next_read = 0x40;
  std::vector<uint8_t> written;
};

class IoAndInterruptInstructionsTest : public testing::Test {
 protected:
  IoAndInterruptInstructionsTest() { ctx.machine().ports().attach(kPort, 4, device); }
  static void expect_fault(const SystemOutcome& o, uint8_t vec, std::optional<uint32_t> error) {
    ASSERT_EQ(o.kind, Kind::kException);
    EXPECT_EQ(o.exception.vector, vec);
    EXPECT_EQ(o.exception.error_code, error);
  }
  // CPL 3 with IOPL 0, and an I/O bitmap in TSS A allowing only kPort.
  void user_with_io_bitmap() {
    ctx.enter_cpl3();
    constexpr uint32_t kMapOffset = 0x68;
    ctx.ram().write_u16(layout::kTssA + 0x66, kMapOffset);
    for (uint32_t i = 0; i < 0x2000 / 8 * 8; i += 4) {
      ctx.ram().write_u32(layout::kTssA + kMapOffset + i, 0xFFFFFFFF);
    }
    ctx.ram().write_u8(layout::kTssA + kMapOffset + kPort / 8, 0xFE);  // kPort & 7 == 0
    cpu.tr.limit = kMapOffset + 0x2000;
  }

  SystemTestContext ctx;
  CpuState& cpu = ctx.cpu();
  RecordingDevice device;
};

TEST_F(IoAndInterruptInstructionsTest, InAndOutReachTheDevice) {
  cpu.reg(Gpr::kEdx) = kPort;
  cpu.reg(Gpr::kEax) = 0x11223344;
  ASSERT_EQ(execute(ctx, {0xEF}).kind, Kind::kContinue);  // out dx, eax
  EXPECT_EQ(device.written, (std::vector<uint8_t>{0x44, 0x33, 0x22, 0x11}));
  ASSERT_EQ(execute(ctx, {0xEC}).kind, Kind::kContinue);  // in al, dx
  EXPECT_EQ(cpu.reg(Gpr::kEax), 0x11223340u);
  EXPECT_EQ(cpu.eip, 0x100002u);
}

TEST_F(IoAndInterruptInstructionsTest, ImmediatePortsAndUnclaimedPortsReadOnes) {
  ASSERT_EQ(execute(ctx, {0xE4, 0x99}).kind, Kind::kContinue);  // in al, 0x99
  EXPECT_EQ(cpu.reg(Gpr::kEax) & 0xFF, 0xFFu);
}

TEST_F(IoAndInterruptInstructionsTest, UserIoFollowsTheTssBitmap) {
  user_with_io_bitmap();
  cpu.reg(Gpr::kEdx) = kPort;
  ASSERT_EQ(execute(ctx, {0xEE}).kind, Kind::kContinue);  // out dx, al
  expect_fault(execute(ctx, {0xEF}), vector::kGp, 0);     // 4 bytes: ports +1..+3 denied.
  cpu.reg(Gpr::kEdx) = 0x3F8;
  expect_fault(execute(ctx, {0xEC}), vector::kGp, 0);
  cpu.eflags |= eflags::kIoplMask;  // IOPL 3 bypasses the bitmap.
  ASSERT_EQ(execute(ctx, {0xEC}).kind, Kind::kContinue);
}

TEST_F(IoAndInterruptInstructionsTest, UserIoWithoutABitmapIsGp) {
  ctx.enter_cpl3();
  ctx.ram().write_u16(layout::kTssA + 0x66, 0x68);  // Map base at the limit: no map.
  cpu.reg(Gpr::kEdx) = kPort;
  expect_fault(execute(ctx, {0xEC}), vector::kGp, 0);
}

TEST_F(IoAndInterruptInstructionsTest, RepOutsbHonoursTheSegmentOverrideAndDf) {
  cpu.segment(SegReg::kFs) = data_segment(0x50, 0x20000, 0xFFFF, 0);
  ctx.ram().write_u32(0x20010, 0x04030201);
  cpu.reg(Gpr::kEdx) = kPort;
  cpu.reg(Gpr::kEsi) = 0x13;
  cpu.reg(Gpr::kEcx) = 3;
  cpu.eflags |= eflags::kDf;
  ASSERT_EQ(execute(ctx, {0xF3, 0x64, 0x6E}).kind, Kind::kContinue);  // rep outsb fs:
  EXPECT_EQ(device.written, (std::vector<uint8_t>{4, 3, 2}));
  EXPECT_EQ(cpu.reg(Gpr::kEsi), 0x10u);
  EXPECT_EQ(cpu.reg(Gpr::kEcx), 0u);
  EXPECT_EQ(cpu.eip, 0x100003u);
}

TEST_F(IoAndInterruptInstructionsTest, RepInsStopsPreciselyAtAFault) {
  ctx.enable_paging();
  ctx.map(0x21000, 0, 0);
  cpu.reg(Gpr::kEdx) = kPort;
  cpu.reg(Gpr::kEdi) = 0x20FFC;
  cpu.reg(Gpr::kEcx) = 4;
  SystemOutcome o = execute(ctx, {0xF3, 0x6D});  // rep insd
  ASSERT_EQ(o.kind, Kind::kException);
  EXPECT_EQ(o.exception.vector, vector::kPf);
  EXPECT_EQ(o.exception.fault_address, 0x21000u);
  EXPECT_EQ(cpu.reg(Gpr::kEdi), 0x21000u);
  EXPECT_EQ(cpu.reg(Gpr::kEcx), 3u);
  EXPECT_EQ(cpu.eip, 0x100000u);
  EXPECT_EQ(ctx.u32(0x20FFC), 0x43424140u);
}

TEST_F(IoAndInterruptInstructionsTest, HltInvlpgAndWbinvdNeedCpl0) {
  ASSERT_EQ(execute(ctx, {0xF4}).kind, Kind::kHalt);
  EXPECT_EQ(cpu.eip, 0x100001u);
  cpu.reg(Gpr::kEax) = 0x401234;
  ASSERT_EQ(execute(ctx, {0x0F, 0x01, 0x38}).kind, Kind::kContinue);  // invlpg [eax]
  EXPECT_EQ(ctx.invalidated_pages, (std::vector<uint32_t>{0x401234}));
  ASSERT_EQ(execute(ctx, {0x0F, 0x09}).kind, Kind::kContinue);
  ctx.enter_cpl3();
  expect_fault(execute(ctx, {0xF4}), vector::kGp, 0);
  expect_fault(execute(ctx, {0x0F, 0x01, 0x38}), vector::kGp, 0);
  expect_fault(execute(ctx, {0x0F, 0x09}), vector::kGp, 0);
  expect_fault(execute(ctx, {0x0F, 0x33}), vector::kGp, 0);  // rdpmc
}

TEST_F(IoAndInterruptInstructionsTest, IntNIsDeliveredThroughTheIdt) {
  ctx.set_gate(0x80, descriptor_type::kTrapGate32, sel::kCode0, 0x500000, 3);
  ctx.enter_cpl3();
  ASSERT_EQ(execute(ctx, {0xCD, 0x80}).kind, Kind::kContinue);
  EXPECT_EQ(cpu.eip, 0x500000u);
  EXPECT_EQ(ctx.u32(cpu.reg(Gpr::kEsp)), 0x400002u);
}

TEST_F(IoAndInterruptInstructionsTest, Int3AndIntoAreTrapsThroughDplCheckedGates) {
  ctx.set_gate(vector::kBp, descriptor_type::kInterruptGate32, sel::kCode0, 0x500000, 3);
  ctx.set_gate(vector::kOf, descriptor_type::kInterruptGate32, sel::kCode0, 0x500100, 0);
  ctx.set_gate(vector::kGp, descriptor_type::kInterruptGate32, sel::kCode0, 0x500200, 0);
  ctx.enter_cpl3();
  ASSERT_EQ(execute(ctx, {0xCE}).kind, Kind::kContinue);  // into, OF clear
  EXPECT_EQ(cpu.eip, 0x400001u);
  ASSERT_EQ(execute(ctx, {0xCC}).kind, Kind::kContinue);
  EXPECT_EQ(cpu.eip, 0x500000u);
  EXPECT_EQ(ctx.u32(cpu.reg(Gpr::kEsp)), 0x400002u);
  ctx.enter_cpl3();
  cpu.eflags |= eflags::kOf;
  ASSERT_EQ(execute(ctx, {0xCE}).kind, Kind::kContinue);  // DPL 0 gate: #GP
  EXPECT_EQ(cpu.eip, 0x500200u);
  EXPECT_EQ(ctx.u32(cpu.reg(Gpr::kEsp)), vector::kOf * 8u + 2);
}

TEST_F(IoAndInterruptInstructionsTest, CliStiFollowIopl) {
  ASSERT_EQ(execute(ctx, {0xFA}).kind, Kind::kContinue);
  EXPECT_FALSE(cpu.eflags & eflags::kIf);
  ASSERT_EQ(execute(ctx, {0xFB}).kind, Kind::kContinue);
  EXPECT_TRUE(cpu.eflags & eflags::kIf);
  EXPECT_TRUE(cpu.events.interrupt_shadow);
  ctx.enter_cpl3();
  expect_fault(execute(ctx, {0xFA}), vector::kGp, 0);
  cpu.eflags |= eflags::kIoplMask;
  ASSERT_EQ(execute(ctx, {0xFA}).kind, Kind::kContinue);
}

TEST_F(IoAndInterruptInstructionsTest, PopfAtCpl3KeepsIoplAndIf) {
  ctx.enter_cpl3();
  cpu.eflags = eflags::kFixed1 | eflags::kIf;
  cpu.reg(Gpr::kEsp) -= 4;
  ctx.ram().write_u32(cpu.reg(Gpr::kEsp), eflags::kIoplMask | eflags::kCf | eflags::kAc);
  ASSERT_EQ(execute(ctx, {0x9D}).kind, Kind::kContinue);
  EXPECT_EQ(cpu.eflags, eflags::kFixed1 | eflags::kIf | eflags::kCf | eflags::kAc);
  EXPECT_EQ(cpu.reg(Gpr::kEsp), layout::kStack3);
  ASSERT_EQ(execute(ctx, {0x9C}).kind, Kind::kContinue);  // pushfd
  EXPECT_EQ(ctx.u32(cpu.reg(Gpr::kEsp)), cpu.eflags);
}

TEST_F(IoAndInterruptInstructionsTest, OnlySystemFormsAreRouted) {
  EXPECT_FALSE(is_system_instruction(decode({0x89, 0xC3})));  // mov ebx, eax
  EXPECT_FALSE(is_system_instruction(decode({0xC3})));        // ret
  EXPECT_FALSE(is_system_instruction(decode({0xFF, 0xE0})));  // jmp eax
  EXPECT_TRUE(is_system_instruction(decode({0xCB})));         // retf
  EXPECT_TRUE(is_system_instruction(decode({0x8E, 0xD8})));   // mov ds, ax
  EXPECT_TRUE(is_system_instruction(decode({0x0F, 0x22, 0xD8})));
  EXPECT_TRUE(is_system_instruction(decode({0x17})));  // pop ss
  ASSERT_EQ(execute(ctx, {0x89, 0xC3}).kind, Kind::kException);
}

}  // namespace
}  // namespace bt86::test
