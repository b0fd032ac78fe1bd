// Control/debug registers, descriptor-table registers, descriptor queries,
// MSRs, CPUID and SYSENTER/SYSEXIT.
#include <gtest/gtest.h>

#include "monitor/cpuid_model.h"
#include "runtime/system/guest_event.h"
#include "system_test_context.h"

namespace bt86::test {
namespace {

using Kind = SystemOutcome::Kind;

class PrivilegedRegistersTest : public testing::Test {
 protected:
  SystemTestContext ctx;
  CpuState& cpu = ctx.cpu();
  SystemOutcome with_eax(uint32_t eax, std::vector<uint8_t> bytes) {
    cpu.reg(Gpr::kEax) = eax;
    return execute(ctx, std::move(bytes));
  }
  static void expect_fault(const SystemOutcome& o, uint8_t vec, std::optional<uint32_t> error) {
    ASSERT_EQ(o.kind, Kind::kException);
    EXPECT_EQ(o.exception.vector, vec);
    EXPECT_EQ(o.exception.error_code, error);
  }
};

const std::vector<uint8_t> kMovCr0Eax = {0x0F, 0x22, 0xC0};
const std::vector<uint8_t> kMovCr3Eax = {0x0F, 0x22, 0xD8};
const std::vector<uint8_t> kMovCr4Eax = {0x0F, 0x22, 0xE0};

TEST_F(PrivilegedRegistersTest, Cr0PagingBitsNotifyAndOthersDoNot) {
  ctx.enable_paging();
  cpu.cr0 &= ~cr0::kPg;
  ASSERT_EQ(with_eax(cpu.cr0 | cr0::kMp, kMovCr0Eax).kind, Kind::kContinue);
  EXPECT_EQ(ctx.paging_changes, 0);
  ASSERT_EQ(with_eax(cpu.cr0 | cr0::kPg, kMovCr0Eax).kind, Kind::kContinue);
  EXPECT_EQ(ctx.paging_changes, 1);
  ASSERT_EQ(with_eax(cpu.cr0 | cr0::kWp, kMovCr0Eax).kind, Kind::kContinue);
  EXPECT_EQ(ctx.paging_changes, 2);
  EXPECT_EQ(cpu.eip, 0x100009u);  // Three 3-byte instructions.
}

TEST_F(PrivilegedRegistersTest, Cr0InvalidCombinationsAreGp) {
  expect_fault(with_eax(cr0::kPg, kMovCr0Eax), vector::kGp, 0);
  expect_fault(with_eax(cr0::kPe | cr0::kNw, kMovCr0Eax), vector::kGp, 0);
  EXPECT_EQ(with_eax(cr0::kEt, kMovCr0Eax).kind, Kind::kShutdown);  // Real mode.
}

TEST_F(PrivilegedRegistersTest, Cr3WritesAlwaysNotifyAndReadBack) {
  ASSERT_EQ(with_eax(0x123000, kMovCr3Eax).kind, Kind::kContinue);
  ASSERT_EQ(with_eax(0x123000, kMovCr3Eax).kind, Kind::kContinue);
  EXPECT_EQ(ctx.paging_changes, 2);
  ASSERT_EQ(execute(ctx, {0x0F, 0x20, 0xD9}).kind, Kind::kContinue);  // mov ecx, cr3
  EXPECT_EQ(cpu.reg(Gpr::kEcx), 0x123000u);
}

TEST_F(PrivilegedRegistersTest, Cr4ReservedAndUnadvertisedBitsAreGp) {
  expect_fault(with_eax(cr4::kPae, kMovCr4Eax), vector::kGp, 0);
  expect_fault(with_eax(cr4::kVme, kMovCr4Eax), vector::kGp, 0);
  expect_fault(with_eax(1u << 20, kMovCr4Eax), vector::kGp, 0);
  EXPECT_EQ(cpu.cr4, 0u);
  ASSERT_EQ(with_eax(cr4::kPse | cr4::kOsfxsr, kMovCr4Eax).kind, Kind::kContinue);
  EXPECT_EQ(ctx.paging_changes, 1);
  ASSERT_EQ(with_eax(cr4::kPse | cr4::kOsfxsr | cr4::kOsxmmexcpt, kMovCr4Eax).kind,
            Kind::kContinue);
  EXPECT_EQ(ctx.paging_changes, 1);
}

TEST_F(PrivilegedRegistersTest, ControlRegistersAtCpl3AreGp) {
  ctx.enter_cpl3();
  expect_fault(with_eax(0, kMovCr3Eax), vector::kGp, 0);
  expect_fault(execute(ctx, {0x0F, 0x20, 0xC0}), vector::kGp, 0);  // mov eax, cr0
  expect_fault(execute(ctx, {0x0F, 0x06}), vector::kGp, 0);        // clts
  expect_fault(execute(ctx, {0x0F, 0x23, 0xF8}), vector::kGp, 0);  // mov dr7, eax
}

TEST_F(PrivilegedRegistersTest, DebugRegisters4And5AliasOnlyWithoutCr4De) {
  ASSERT_EQ(with_eax(0x1, {0x0F, 0x23, 0xE8}).kind, Kind::kContinue);  // mov dr5, eax
  EXPECT_EQ(cpu.dr[7], 0x401u);
  ASSERT_EQ(execute(ctx, {0x0F, 0x21, 0xE0}).kind, Kind::kContinue);  // mov eax, dr4
  EXPECT_EQ(cpu.reg(Gpr::kEax), 0xFFFF0FF0u);
  cpu.cr4 |= cr4::kDe;
  expect_fault(execute(ctx, {0x0F, 0x21, 0xE0}), vector::kUd, std::nullopt);
}

TEST_F(PrivilegedRegistersTest, CltsLmswSmsw) {
  cpu.cr0 |= cr0::kTs;
  ASSERT_EQ(execute(ctx, {0x0F, 0x06}).kind, Kind::kContinue);
  EXPECT_FALSE(cpu.cr0 & cr0::kTs);
  ASSERT_EQ(with_eax(cr0::kMp | cr0::kTs, {0x0F, 0x01, 0xF0}).kind, Kind::kContinue);  // lmsw ax
  EXPECT_EQ(cpu.cr0, cr0::kPe | cr0::kEt | cr0::kMp | cr0::kTs);      // PE cannot be cleared.
  ASSERT_EQ(execute(ctx, {0x0F, 0x01, 0xE0}).kind, Kind::kContinue);  // smsw eax
  EXPECT_EQ(cpu.reg(Gpr::kEax), cpu.cr0);
}

TEST_F(PrivilegedRegistersTest, LgdtAndSgdtRoundTripThroughMemory) {
  cpu.reg(Gpr::kEbx) = 0x5000;
  ctx.ram().write_u16(0x5000, 0x3FF);
  ctx.ram().write_u32(0x5002, 0xC0001000);
  ASSERT_EQ(execute(ctx, {0x0F, 0x01, 0x13}).kind, Kind::kContinue);  // lgdt [ebx]
  EXPECT_EQ(cpu.gdtr, (DescriptorTableRegister{0xC0001000, 0x3FF}));
  EXPECT_EQ(ctx.descriptor_table_changes, 1);
  ASSERT_EQ(execute(ctx, {0x0F, 0x01, 0x1B}).kind, Kind::kContinue);  // lidt [ebx]
  EXPECT_EQ(cpu.idtr, (DescriptorTableRegister{0xC0001000, 0x3FF}));
  cpu.reg(Gpr::kEbx) = 0x5100;
  ASSERT_EQ(execute(ctx, {0x0F, 0x01, 0x03}).kind, Kind::kContinue);  // sgdt [ebx]
  EXPECT_EQ(ctx.ram().read_u16(0x5100), 0x3FF);
  EXPECT_EQ(ctx.u32(0x5102), 0xC0001000u);
  ctx.enter_cpl3();
  cpu.reg(Gpr::kEbx) = 0x5000;
  expect_fault(execute(ctx, {0x0F, 0x01, 0x13}), vector::kGp, 0);
}

TEST_F(PrivilegedRegistersTest, LgdtHonoursTheSegmentLimit) {
  cpu.segment(SegReg::kDs) = data_segment(sel::kSmallData, 0x20000, 0xFF, 0);
  cpu.reg(Gpr::kEbx) = 0xFC;  // Base field at 0xFE..0x101: past the limit.
  expect_fault(execute(ctx, {0x0F, 0x01, 0x13}), vector::kGp, 0);
}

TEST_F(PrivilegedRegistersTest, LtrMarksTheTssBusyAndRejectsABusyOne) {
  ASSERT_EQ(with_eax(sel::kTssB, {0x0F, 0x00, 0xD8}).kind, Kind::kContinue);  // ltr ax
  EXPECT_EQ(cpu.tr.selector, sel::kTssB);
  EXPECT_EQ(cpu.tr.base, layout::kTssB);
  EXPECT_EQ(ctx.gdt_raw(sel::kTssB) >> 40 & 0xF, descriptor_type::kTss32Busy);
  expect_fault(with_eax(sel::kTssB, {0x0F, 0x00, 0xD8}), vector::kGp, sel::kTssB);
  expect_fault(with_eax(0, {0x0F, 0x00, 0xD8}), vector::kGp, 0);
  expect_fault(with_eax(sel::kData0, {0x0F, 0x00, 0xD8}), vector::kGp, sel::kData0);
  ASSERT_EQ(execute(ctx, {0x0F, 0x00, 0xC9}).kind, Kind::kContinue);  // str ecx
  EXPECT_EQ(cpu.reg(Gpr::kEcx), sel::kTssB);
}

TEST_F(PrivilegedRegistersTest, LldtLoadsAnLdtDescriptorOnly) {
  ASSERT_EQ(with_eax(0, {0x0F, 0x00, 0xD0}).kind, Kind::kContinue);  // lldt ax
  EXPECT_TRUE(cpu.ldtr.unusable);
  ASSERT_EQ(with_eax(sel::kLdt, {0x0F, 0x00, 0xD0}).kind, Kind::kContinue);
  EXPECT_EQ(cpu.ldtr.base, layout::kLdt);
  expect_fault(with_eax(sel::kData0, {0x0F, 0x00, 0xD0}), vector::kGp, sel::kData0);
  expect_fault(with_eax(sel::kLdtData, {0x0F, 0x00, 0xD0}), vector::kGp, sel::kLdtData & ~3);
}

TEST_F(PrivilegedRegistersTest, LarLslVerrVerwReportThroughZf) {
  cpu.reg(Gpr::kEbx) = sel::kSmallData;
  ASSERT_EQ(execute(ctx, {0x0F, 0x03, 0xC3}).kind, Kind::kContinue);  // lsl eax, bx
  EXPECT_TRUE(cpu.eflags & eflags::kZf);
  EXPECT_EQ(cpu.reg(Gpr::kEax), 0xFFu);
  ASSERT_EQ(execute(ctx, {0x0F, 0x02, 0xC3}).kind, Kind::kContinue);  // lar eax, bx
  EXPECT_EQ(cpu.reg(Gpr::kEax), 0x00409200u);  // Queries set no accessed bit.
  cpu.reg(Gpr::kEax) = sel::kReadOnlyData;
  ASSERT_EQ(execute(ctx, {0x0F, 0x00, 0xE8}).kind, Kind::kContinue);  // verw ax
  EXPECT_FALSE(cpu.eflags & eflags::kZf);
  ASSERT_EQ(execute(ctx, {0x0F, 0x00, 0xE0}).kind, Kind::kContinue);  // verr ax
  EXPECT_TRUE(cpu.eflags & eflags::kZf);
  ctx.enter_cpl3();
  cpu.reg(Gpr::kEbx) = sel::kData0;
  ASSERT_EQ(execute(ctx, {0x0F, 0x03, 0xC3}).kind, Kind::kContinue);  // DPL 0 from CPL 3
  EXPECT_FALSE(cpu.eflags & eflags::kZf);
  cpu.reg(Gpr::kEbx) = 0x1F8;  // Beyond the GDT limit: ZF=0, no fault.
  ASSERT_EQ(execute(ctx, {0x0F, 0x02, 0xC3}).kind, Kind::kContinue);
  EXPECT_FALSE(cpu.eflags & eflags::kZf);
}

TEST_F(PrivilegedRegistersTest, ArplRaisesTheRpl) {
  cpu.reg(Gpr::kEbx) = 0x10;
  cpu.reg(Gpr::kEax) = 0x23;
  ASSERT_EQ(execute(ctx, {0x63, 0xC3}).kind, Kind::kContinue);  // arpl bx, ax
  EXPECT_EQ(cpu.reg(Gpr::kEbx), 0x13u);
  EXPECT_TRUE(cpu.eflags & eflags::kZf);
  ASSERT_EQ(execute(ctx, {0x63, 0xC3}).kind, Kind::kContinue);
  EXPECT_FALSE(cpu.eflags & eflags::kZf);
}

TEST_F(PrivilegedRegistersTest, MsrsTheModelHasAndGpForTheRest) {
  cpu.reg(Gpr::kEcx) = 0x174;
  cpu.reg(Gpr::kEdx) = 0;
  ASSERT_EQ(with_eax(0x60, {0x0F, 0x30}).kind, Kind::kContinue);  // wrmsr
  EXPECT_EQ(cpu.msr.sysenter_cs, 0x60u);
  cpu.reg(Gpr::kEcx) = 0x10;
  cpu.reg(Gpr::kEdx) = 1;
  ASSERT_EQ(with_eax(2, {0x0F, 0x30}).kind, Kind::kContinue);
  EXPECT_EQ(ctx.tsc, 0x100000002u);
  ctx.tsc = 0x500000006;
  ASSERT_EQ(execute(ctx, {0x0F, 0x32}).kind, Kind::kContinue);  // rdmsr
  EXPECT_EQ(cpu.reg(Gpr::kEax), 6u);
  EXPECT_EQ(cpu.reg(Gpr::kEdx), 5u);
  for (uint32_t unknown : {0x1Bu, 0x277u, 0xC0000080u, 0x2FFu}) {
    cpu.reg(Gpr::kEcx) = unknown;
    expect_fault(execute(ctx, {0x0F, 0x32}), vector::kGp, 0);
    expect_fault(execute(ctx, {0x0F, 0x30}), vector::kGp, 0);
  }
  ctx.enter_cpl3();
  cpu.reg(Gpr::kEcx) = 0x174;
  expect_fault(execute(ctx, {0x0F, 0x32}), vector::kGp, 0);
}

TEST_F(PrivilegedRegistersTest, RdtscObeysCr4Tsd) {
  ctx.tsc = 42;
  ctx.enter_cpl3();
  ASSERT_EQ(execute(ctx, {0x0F, 0x31}).kind, Kind::kContinue);
  EXPECT_EQ(cpu.reg(Gpr::kEax), 42u);
  cpu.cr4 |= cr4::kTsd;
  expect_fault(execute(ctx, {0x0F, 0x31}), vector::kGp, 0);
}

TEST_F(PrivilegedRegistersTest, CpuidAnswersFromTheMachineModel) {
  cpu.reg(Gpr::kEcx) = 0;
  ASSERT_EQ(with_eax(1, {0x0F, 0xA2}).kind, Kind::kContinue);
  EXPECT_EQ(cpu.reg(Gpr::kEdx), ctx.machine().cpuid().query(1, 0).edx);
  EXPECT_TRUE(cpu.reg(Gpr::kEdx) & cpuid::edx1::kSep);
}

TEST_F(PrivilegedRegistersTest, SysenterAndSysexitUseTheMsrs) {
  ctx.enter_cpl3();
  cpu.msr = {sel::kCode0, 0x9000, 0xC0100000, cpu.msr.pat, cpu.msr.misc_enable};
  cpu.eflags |= eflags::kIf;
  ASSERT_EQ(execute(ctx, {0x0F, 0x34}).kind, Kind::kContinue);
  EXPECT_EQ(cpu.cpl(), 0);
  EXPECT_EQ(cpu.eip, 0xC0100000u);
  EXPECT_EQ(cpu.reg(Gpr::kEsp), 0x9000u);
  EXPECT_EQ(cpu.segment(SegReg::kSs).selector, sel::kData0);
  EXPECT_FALSE(cpu.eflags & eflags::kIf);
  cpu.reg(Gpr::kEcx) = 0x5ff0;
  cpu.reg(Gpr::kEdx) = 0x400100;
  ASSERT_EQ(execute(ctx, {0x0F, 0x35}).kind, Kind::kContinue);
  EXPECT_EQ(cpu.cpl(), 3);
  EXPECT_EQ(cpu.segment(SegReg::kCs).selector, sel::kCode3);
  EXPECT_EQ(cpu.segment(SegReg::kSs).selector, sel::kData3);
  EXPECT_EQ(cpu.eip, 0x400100u);
  EXPECT_EQ(cpu.reg(Gpr::kEsp), 0x5ff0u);
  expect_fault(execute(ctx, {0x0F, 0x35}), vector::kGp, 0);  // sysexit at CPL 3
  cpu.msr.sysenter_cs = 0;
  expect_fault(execute(ctx, {0x0F, 0x34}), vector::kGp, 0);
}

}  // namespace
}  // namespace bt86::test
