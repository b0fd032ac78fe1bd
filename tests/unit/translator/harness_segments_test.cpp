// Compensated segments (TranslationMode::compensated): translated accesses
// through segments with a base, a limit below 4 GiB, expand-down, read-only
// or null ones, checked against what the hardware does with them.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "tests/unit/translator/guest_program.h"

namespace bt86 {
namespace {

using namespace asmjit;

constexpr uint32_t kCode = 0x1000;
constexpr uint32_t kStack = 0x80000;
constexpr uint32_t kMemory = 1 << 20;
constexpr uint32_t kArithFlags = eflags::kArith;

constexpr uint8_t kDataReadWrite = 0x3;
constexpr uint8_t kDataReadOnly = 0x1;
constexpr uint8_t kDataReadWriteExpandDown = 0x7;

Segment data_segment(uint32_t base, uint32_t limit, uint8_t type = kDataReadWrite) {
  Segment s = flat_segment(0x10, type, 0);
  s.base = base;
  s.limit = limit;
  return s;
}

Segment null_segment() {
  Segment s;
  s.unusable = true;
  return s;
}

using test::raw;

x86::Mem with_segment(x86::Mem m, const x86::SReg& segment) {
  m.setSegment(segment);
  return m;
}

uint32_t read32(FlatHarness& h, uint32_t address) {
  uint32_t v;
  std::memcpy(&v, h.memory().data() + address, 4);
  return v;
}

void write32(FlatHarness& h, uint32_t address, uint32_t v) {
  std::memcpy(h.memory().data() + address, &v, 4);
}

FlatRunResult run(FlatHarness& h, const std::function<void(x86::Assembler&)>& body,
                  const std::function<void(CpuState&)>& setup) {
  return test::run32(h, kCode, kStack, body, setup);
}

void expect_exception(const FlatRunResult& r, uint8_t vector, uint32_t eip) {
  ASSERT_EQ(r.stop, FlatRunResult::Stop::kException);
  ASSERT_TRUE(r.exception.has_value());
  EXPECT_EQ(r.exception->vector, vector);
  EXPECT_EQ(r.exception->error_code, std::optional<uint32_t>(0));
  EXPECT_EQ(r.state.eip, eip);
}

TEST(CompensatedSegments, DataSegmentBaseRelocatesLoadsAndStores) {
  FlatHarness h({.memory_size = kMemory});
  write32(h, 0x20000 + 0x40, 0x11223344);
  write32(h, 0x20000 + 0x44, 0x55);
  FlatRunResult r = run(
      h,
      [](x86::Assembler& a) {
        a.mov(x86::ebx, 0x40);
        a.mov(x86::eax, x86::dword_ptr(x86::ebx));               // mov eax, [ebx]
        a.mov(x86::dword_ptr(x86::ebx, 0x10), x86::eax);         // mov [ebx+0x10], eax
        a.add(x86::dword_ptr(x86::ebx, x86::ebx, 0, -0x3C), 7);  // add [ebx*2-0x3c], 7
        a.mov(x86::ecx, 0x1000);        // A moffs operand has no base register to pick up.
        raw(a, {0xA1, 0x44, 0, 0, 0});  // mov eax, [0x44] (moffs)
        a.mov(x86::ah, x86::byte_ptr(x86::ebx, 3));  // mov ah, [ebx+3]
        a.mov(x86::edx, 0x2000);                     // ES: unchanged, flat
        a.hlt();
      },
      [](CpuState& s) { s.segment(SegReg::kDs) = data_segment(0x20000, 0xFFFFF); });
  ASSERT_EQ(r.stop, FlatRunResult::Stop::kHalt);
  EXPECT_EQ(read32(h, 0x20050), 0x11223344u);
  EXPECT_EQ(read32(h, 0x20044), 0x55u + 7);
  EXPECT_EQ(r.state.reg(Gpr::kEax), 0x1100u + 0x5C);
}

// A based segment wraps at 4 GiB, as linear addresses do.
TEST(CompensatedSegments, BasePlusOffsetWrapsAt4GiB) {
  FlatHarness h({.memory_size = kMemory});
  write32(h, 0x3000, 0xCAFE);
  FlatRunResult r = run(
      h,
      [](x86::Assembler& a) {
        a.mov(x86::esi, 0x4000);
        a.mov(x86::eax, x86::dword_ptr(x86::esi));
        a.hlt();
      },
      [](CpuState& s) { s.segment(SegReg::kDs) = data_segment(0xFFFFF000u, 0xFFFFFFFFu); });
  ASSERT_EQ(r.stop, FlatRunResult::Stop::kHalt);
  EXPECT_EQ(r.state.reg(Gpr::kEax), 0xCAFEu);
}

// The last byte inside the limit is fine; one byte further is #GP(0) at the
// instruction with registers and flags as before it.
TEST(CompensatedSegments, LimitViolationIsAPreciseGeneralProtectionFault) {
  FlatHarness h({.memory_size = kMemory});
  uint32_t fault_eip = 0;
  FlatRunResult r = run(
      h,
      [&](x86::Assembler& a) {
        a.mov(x86::ebx, 0xFFC);
        a.mov(x86::eax, x86::dword_ptr(x86::ebx));  // Bytes 0xFFC..0xFFF: inside.
        a.mov(x86::ebx, 0xFFD);
        a.mov(x86::eax, 0x80000000u);
        a.add(x86::eax, x86::eax);  // CF, ZF, OF and PF set.
        fault_eip = kCode + static_cast<uint32_t>(a.offset());
        a.mov(x86::ecx, x86::dword_ptr(x86::ebx));  // 0xFFD..0x1000: one past.
        a.hlt();
      },
      [](CpuState& s) { s.segment(SegReg::kDs) = data_segment(0x20000, 0xFFF); });
  expect_exception(r, vector::kGp, fault_eip);
  EXPECT_EQ(r.state.reg(Gpr::kEbx), 0xFFDu);
  EXPECT_EQ(r.state.reg(Gpr::kEax), 0u);
  EXPECT_EQ(r.state.eflags & kArithFlags, eflags::kCf | eflags::kZf | eflags::kOf | eflags::kPf);
}

// bt with a register bit offset reaches the word (offset SAR 5) dwords
// from its operand, also below it; that word is what the limit is checked
// against. bt keeps ZF.
TEST(CompensatedSegments, BitTestWithRegisterOffsetChecksTheWordItReaches) {
  FlatHarness h({.memory_size = kMemory});
  write32(h, 0x20000 + 0xFC, 0x80000000u);
  uint32_t fault_eip = 0;
  FlatRunResult r = run(
      h,
      [&](x86::Assembler& a) {
        a.mov(x86::ebx, 0x100);
        a.mov(x86::ecx, 8 * 0x20 + 3);
        a.bts(x86::dword_ptr(x86::ebx), x86::ecx);  // Bit 3 of the dword at 0x120.
        a.mov(x86::ecx, 0xFFFFFFFFu);
        a.xor_(x86::edx, x86::edx);                // ZF set, CF clear.
        a.bt(x86::dword_ptr(x86::ebx), x86::ecx);  // Bit 31 of the dword at 0xFC.
        a.setc(x86::dl);
        a.setz(x86::dh);
        a.mov(x86::ecx, 8 * 0xEFC + 7);
        a.btr(x86::word_ptr(x86::ebx),
              x86::cx);  // Bit 7 of the word at 0x100 + 2 * 0x77E = 0xFFC: inside.
        a.mov(x86::ecx, 8 * 0xF00);
        a.stc();
        fault_eip = kCode + static_cast<uint32_t>(a.offset());
        a.btc(x86::dword_ptr(x86::ebx), x86::ecx);  // The dword at 0x1000: one past the limit.
        a.hlt();
      },
      [](CpuState& s) { s.segment(SegReg::kDs) = data_segment(0x20000, 0xFFF); });
  expect_exception(r, vector::kGp, fault_eip);
  EXPECT_EQ(read32(h, 0x20120), 8u);
  EXPECT_EQ(r.state.reg(Gpr::kEdx), 0x0101u) << "CF from bit 31, ZF kept";
  EXPECT_EQ(r.state.eflags & eflags::kCf, eflags::kCf) << "the flags before the btc";
}

TEST(CompensatedSegments, ReadOnlySegmentRefusesStoresOnly) {
  FlatHarness h({.memory_size = kMemory});
  write32(h, 0x20010, 42);
  uint32_t fault_eip = 0;
  FlatRunResult r = run(
      h,
      [&](x86::Assembler& a) {
        a.mov(x86::eax, x86::dword_ptr(0x10));
        fault_eip = kCode + static_cast<uint32_t>(a.offset());
        a.inc(x86::dword_ptr(0x10));
        a.hlt();
      },
      [](CpuState& s) { s.segment(SegReg::kDs) = data_segment(0x20000, 0xFFFF, kDataReadOnly); });
  expect_exception(r, vector::kGp, fault_eip);
  EXPECT_EQ(r.state.reg(Gpr::kEax), 42u);
  EXPECT_EQ(read32(h, 0x20010), 42u);
}

TEST(CompensatedSegments, NullSegmentFaultsOnAnyAccess) {
  FlatHarness h({.memory_size = kMemory});
  uint32_t fault_eip = 0;
  FlatRunResult r = run(
      h,
      [&](x86::Assembler& a) {
        a.mov(x86::eax, x86::dword_ptr(0x10));  // DS: flat.
        fault_eip = kCode + static_cast<uint32_t>(a.offset());
        a.mov(x86::eax, with_segment(x86::dword_ptr(0x10), x86::gs));
        a.hlt();
      },
      [](CpuState& s) { s.segment(SegReg::kGs) = null_segment(); });
  expect_exception(r, vector::kGp, fault_eip);
}

// A stack segment with a base: push, call, ret, pop, leave and [ebp]
// addressing (SS by default) all go through it.
TEST(CompensatedSegments, StackSegmentBaseCoversEveryStackAccess) {
  FlatHarness h({.memory_size = kMemory});
  FlatRunResult r = run(
      h,
      [](x86::Assembler& a) {
        Label function = a.newLabel(), done = a.newLabel();
        a.push(0x1234);
        a.call(function);
        a.pop(x86::ecx);
        a.jmp(done);
        a.bind(function);
        a.push(x86::ebp);
        a.mov(x86::ebp, x86::esp);
        a.mov(x86::eax, x86::dword_ptr(x86::ebp, 8));  // The 0x1234 pushed first.
        a.pushfd();
        a.popfd();
        a.leave();
        a.ret();
        a.bind(done);
        a.hlt();
      },
      [](CpuState& s) {
        s.segment(SegReg::kSs) = data_segment(0x40000, 0xFFFFFFFFu);
        s.reg(Gpr::kEsp) = 0x1000;
      });
  ASSERT_EQ(r.stop, FlatRunResult::Stop::kHalt);
  EXPECT_EQ(r.state.reg(Gpr::kEax), 0x1234u);
  EXPECT_EQ(r.state.reg(Gpr::kEcx), 0x1234u);
  EXPECT_EQ(r.state.reg(Gpr::kEsp), 0x1000u);
  EXPECT_EQ(read32(h, 0x40000 + 0x1000 - 4), 0x1234u);
}

// Expand-down: the valid offsets are those above the limit; a push that
// would go to or below it is #SS(0) with ESP unchanged.
TEST(CompensatedSegments, ExpandDownStackFaultsBelowItsLimit) {
  FlatHarness h({.memory_size = kMemory});
  uint32_t fault_eip = 0;
  FlatRunResult r = run(
      h,
      [&](x86::Assembler& a) {
        a.push(1);  // 0xF00C..0xF00F
        a.push(2);  // 0xF008..0xF00B
        fault_eip = kCode + static_cast<uint32_t>(a.offset());
        a.push(3);  // 0xF004..0xF007 reaches the limit's last byte 0xF007: #SS.
        a.hlt();
      },
      [](CpuState& s) {
        Segment ss = data_segment(0x40000, 0xF007, kDataReadWriteExpandDown);
        ss.db = true;
        s.segment(SegReg::kSs) = ss;
        s.reg(Gpr::kEsp) = 0xF010;
      });
  expect_exception(r, vector::kSs, fault_eip);
  EXPECT_EQ(r.state.reg(Gpr::kEsp), 0xF008u);
  EXPECT_EQ(read32(h, 0x40000 + 0xF008), 2u);
}

// pop to memory checks its destination after ESP moved; a fault there
// leaves ESP where it was before the pop.
TEST(CompensatedSegments, PopToMemoryFaultRestoresEsp) {
  FlatHarness h({.memory_size = kMemory});
  uint32_t fault_eip = 0;
  FlatRunResult r = run(
      h,
      [&](x86::Assembler& a) {
        a.push(7);
        fault_eip = kCode + static_cast<uint32_t>(a.offset());
        a.pop(x86::dword_ptr(0x2000));  // DS limit 0xFFF.
        a.hlt();
      },
      [](CpuState& s) { s.segment(SegReg::kDs) = data_segment(0x20000, 0xFFF); });
  expect_exception(r, vector::kGp, fault_eip);
  EXPECT_EQ(r.state.reg(Gpr::kEsp), kStack - 4);
}

Segment stack_segment_16(uint32_t base) {
  Segment s = data_segment(base, 0xFFFF);
  s.db = false;
  return s;
}

// On a 16-bit stack segment (SS.B clear) push, pop, call, ret, enter,
// leave, pushf, popf, pushad and popad address and move SP alone: it wraps at 64 KiB and
// the upper half of ESP stays (and goes into EBP with enter's copy of ESP).
TEST(CompensatedSegments, SixteenBitStackWrapsSpAndKeepsTheUpperHalf) {
  FlatHarness h({.memory_size = kMemory});
  FlatRunResult r = run(
      h,
      [](x86::Assembler& a) {
        Label function = a.newLabel(), back = a.newLabel();
        a.pushad();  // A callout: EDI lands at 0xFFE4, wrapped.
        a.popad();
        a.mov(x86::eax, 0x11111111);
        a.push(x86::eax);  // SP 0x0004 -> 0x0000.
        a.mov(x86::eax, 0x22222222);
        a.push(x86::eax);  // Wraps: SP 0xFFFC.
        a.mov(x86::ebx, x86::esp);
        a.call(function);
        a.jmp(back);
        a.bind(function);
        a.ret();
        a.bind(back);
        a.pop(x86::edx);
        a.pop(x86::esi);  // SP 0x0004 again.
        a.enter(8, 0);    // Pushes EBP at 0x0000; EBP = ESP = 0xABCD0000; SP = 0xFFF8.
        a.mov(x86::edi, x86::esp);
        a.mov(x86::ecx, x86::ebp);
        a.pushfd();
        a.popfd();
        a.leave();  // SP = BP, pops EBP: SP 0x0004.
        a.hlt();
      },
      [](CpuState& s) {
        s.segment(SegReg::kSs) = stack_segment_16(0x30000);
        s.reg(Gpr::kEsp) = 0xABCD0004u;
        s.reg(Gpr::kEbp) = 0x5678CAFEu;
        s.reg(Gpr::kEdi) = 0xD1D1D1D1u;
      });
  ASSERT_EQ(r.stop, FlatRunResult::Stop::kHalt);
  EXPECT_EQ(read32(h, 0x3FFE4), 0xD1D1D1D1u) << "pushad";
  EXPECT_EQ(read32(h, 0x3FFFC), 0x22222222u);
  EXPECT_EQ(read32(h, 0x30000), 0x5678CAFEu) << "enter's push of EBP";
  EXPECT_EQ(r.state.reg(Gpr::kEbx), 0xABCDFFFCu);
  EXPECT_EQ(r.state.reg(Gpr::kEdx), 0x22222222u);
  EXPECT_EQ(r.state.reg(Gpr::kEsi), 0x11111111u);
  EXPECT_EQ(r.state.reg(Gpr::kEdi), 0xABCDFFF8u);
  // A 32-bit enter copies all of ESP into EBP, its kept upper half too, as
  // the host CPU does (bt86-code16-test, 32_stack_ss16).
  EXPECT_EQ(r.state.reg(Gpr::kEcx), 0xABCD0000u) << "EBP = ESP";
  EXPECT_EQ(r.state.reg(Gpr::kEbp), 0x5678CAFEu);
  EXPECT_EQ(r.state.reg(Gpr::kEsp), 0xABCD0004u);
}

// pop to memory moves SP before its store; when the store faults (a limit,
// a page fault), SP is put back with the same wrap.
TEST(CompensatedSegments, SixteenBitStackPopToMemoryFaultRestoresSp) {
  for (const bool page_fault : {false, true}) {
    SCOPED_TRACE(page_fault ? "page fault" : "limit");
    FlatHarness h({.memory_size = kMemory});
    h.set_page_access(0x21000, 0x1000, PageAccess::kRead);
    uint32_t fault_eip = 0;
    FlatRunResult r = run(
        h,
        [&](x86::Assembler& a) {
          a.push(7);  // SP 0x0000 -> 0xFFFC.
          fault_eip = kCode + static_cast<uint32_t>(a.offset());
          a.pop(x86::dword_ptr(page_fault ? 0x1000 : 0x2000));  // Read-only page; past the limit.
          a.hlt();
        },
        [&](CpuState& s) {
          s.segment(SegReg::kSs) = stack_segment_16(0x30000);
          s.segment(SegReg::kDs) = data_segment(0x20000, 0x1FFF);
          s.reg(Gpr::kEsp) = 0xABCD0000u;
        });
    ASSERT_EQ(r.stop, FlatRunResult::Stop::kException);
    EXPECT_EQ(r.exception->vector, page_fault ? vector::kPf : vector::kGp);
    EXPECT_EQ(r.state.eip, fault_eip);
    EXPECT_EQ(r.state.reg(Gpr::kEsp), 0xABCDFFFCu);
  }
}

// The compensated access runs the instruction on a borrowed register (here
// EDI, the only one the instruction does not use besides EBP); a page fault
// in it reports the linear address and gives every register back.
TEST(CompensatedSegments, PageFaultInACompensatedAccessKeepsAllRegisters) {
  FlatHarness h({.memory_size = kMemory});
  h.set_page_access(0x31000, 0x1000, PageAccess::kRead);
  uint32_t fault_eip = 0;
  FlatRunResult r = run(
      h,
      [&](x86::Assembler& a) {
        a.mov(x86::eax, 1);
        a.mov(x86::ecx, 2);
        a.mov(x86::edx, 3);
        a.mov(x86::ebx, 4);
        a.mov(x86::ebp, 5);
        a.mov(x86::esi, 0x1000);
        a.mov(x86::edi, 0xD1D1D1D1u);
        fault_eip = kCode + static_cast<uint32_t>(a.offset());
        a.cmpxchg8b(x86::qword_ptr(x86::esi, x86::ecx, 2, 0x10));  // [0x1018]
        a.hlt();
      },
      [](CpuState& s) { s.segment(SegReg::kDs) = data_segment(0x30000, 0xFFFFF); });
  ASSERT_EQ(r.stop, FlatRunResult::Stop::kException);
  ASSERT_TRUE(r.exception.has_value());
  EXPECT_EQ(r.exception->vector, vector::kPf);
  EXPECT_EQ(r.exception->fault_address, std::optional<uint32_t>(0x31018));
  EXPECT_EQ(r.state.eip, fault_eip);
  const uint32_t want[8] = {1, 2, 3, 4, kStack, 5, 0x1000, 0xD1D1D1D1u};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(r.state.gpr[i], want[i]) << "register " << i;
}

TEST(CompensatedSegments, XlatAndOverridesUseTheirSegment) {
  FlatHarness h({.memory_size = kMemory});
  h.memory()[0x20000 + 0x105] = 0x77;
  write32(h, 0x50000 + 0x20, 0xF5F5);
  FlatRunResult r = run(
      h,
      [](x86::Assembler& a) {
        a.mov(x86::ebx, 0x100);
        a.mov(x86::eax, 5);
        a.xlatb();
        a.mov(x86::ecx, with_segment(x86::dword_ptr(0x20), x86::es));
        a.hlt();
      },
      [](CpuState& s) {
        s.segment(SegReg::kDs) = data_segment(0x20000, 0xFFFF);
        s.segment(SegReg::kEs) = data_segment(0x50000, 0xFFFF);
      });
  ASSERT_EQ(r.stop, FlatRunResult::Stop::kHalt);
  EXPECT_EQ(r.state.reg(Gpr::kEax), 0x77u);
  EXPECT_EQ(r.state.reg(Gpr::kEcx), 0xF5F5u);
}

TEST(CompensatedSegments, StoreThroughCodeSegmentIsGeneralProtection) {
  FlatHarness h({.memory_size = kMemory});
  uint32_t fault_eip = 0;
  FlatRunResult r =
      run(h,
          [&](x86::Assembler& a) {
            a.mov(x86::eax, with_segment(x86::dword_ptr(0x10), x86::cs));  // Reads are fine.
            fault_eip = kCode + static_cast<uint32_t>(a.offset());
            a.mov(with_segment(x86::dword_ptr(0x10), x86::cs), x86::eax);
            a.hlt();
          },
          {});
  expect_exception(r, vector::kGp, fault_eip);
}

Segment code_segment(uint32_t base, uint32_t limit) {
  Segment s = flat_segment(0x08, 0xB, 0);
  s.base = base;
  s.limit = limit;
  return s;
}

// EIP is an offset into CS: code is fetched at base + EIP, a near call
// pushes the offset, and cs: reads (moffs too) are based. The base wraps:
// offset kCode + 0x1000 under base 0xFFFFF000 is linear kCode.
TEST(CompensatedSegments, CodeSegmentBaseFetchesAtBasePlusEip) {
  FlatHarness h({.memory_size = kMemory});
  constexpr uint32_t kOffset = kCode + 0x1000;
  write32(h, 0x800, 0xC0DE);
  uint32_t after_call = 0;
  uint32_t halt_offset = 0;
  FlatRunResult r = run(
      h,
      [&](x86::Assembler& a) {
        Label next = a.newLabel();
        Label target = a.newLabel();
        a.call(next);
        a.bind(next);
        after_call = kOffset + static_cast<uint32_t>(a.offset());
        a.pop(x86::esi);
        raw(a, {0x2E, 0xA1, 0x00, 0x18, 0, 0});  // mov eax, cs:[0x1800] (linear 0x800)
        a.mov(x86::ecx, 0x1800);
        a.mov(x86::edx, with_segment(x86::dword_ptr(x86::ecx), x86::cs));
        a.lea(x86::ebx, x86::ptr(x86::esi, 0));
        a.add(x86::ebx, 0x40);
        a.jmp(x86::ebx);  // Lands on the hlt below, at offset after_call + 0x40.
        a.bind(target);
        while (a.offset() < after_call - kOffset + 0x40) a.nop();
        halt_offset = kOffset + static_cast<uint32_t>(a.offset());
        a.hlt();
      },
      [](CpuState& s) {
        s.eip = kOffset;
        s.segment(SegReg::kCs) = code_segment(0xFFFFF000u, 0xFFFFFFFFu);
      });
  ASSERT_EQ(r.stop, FlatRunResult::Stop::kHalt);
  EXPECT_EQ(r.state.reg(Gpr::kEsi), after_call);
  EXPECT_EQ(r.state.reg(Gpr::kEax), 0xC0DEu);
  EXPECT_EQ(r.state.reg(Gpr::kEdx), 0xC0DEu);
  EXPECT_EQ(r.state.eip, halt_offset);
}

// Each way of reaching an EIP past the CS limit raises #GP(0) at the
// instruction the hardware blames, with nothing of it done: falling
// through onto it, or onto one that crosses the limit (the instruction
// there), and near jmp, jcc, call, ret, indirect jmp and loop (the branch).
TEST(CompensatedSegments, CodeSegmentLimitIsCheckedOnFetchAndNearBranches) {
  constexpr uint32_t kBeyond = 0x60;  // Offset from kCode of a hlt past the limit.
  using Emit = std::function<void(x86::Assembler&, Label beyond)>;
  struct Case {
    const char* what;
    Emit prepare;
    Emit branch;
    bool straddles = false;  // The instruction at the limit crosses it.
    uint32_t esp = kStack;
  };
  const Emit nothing = [](x86::Assembler&, Label) {};
  const std::vector<Case> cases = {
      {"fall through", nothing, nothing},
      {"straddling instruction", nothing,
       [](x86::Assembler& a, Label) { a.mov(x86::ebx, 0x12345678); }, true},
      {"jmp", nothing, [](x86::Assembler& a, Label beyond) { a.jmp(beyond); }},
      {"jcc taken", nothing, [](x86::Assembler& a, Label beyond) { a.jc(beyond); }},
      {"call", nothing, [](x86::Assembler& a, Label beyond) { a.call(beyond); }},
      {"ret", [](x86::Assembler& a, Label) { a.push(kCode + kBeyond); },
       [](x86::Assembler& a, Label) { a.ret(); }, false, kStack - 4},
      {"jmp register", [](x86::Assembler& a, Label) { a.mov(x86::edx, kCode + kBeyond); },
       [](x86::Assembler& a, Label) { a.jmp(x86::edx); }},
      {"loop", nothing, [](x86::Assembler& a, Label beyond) { a.loop(beyond); }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    FlatHarness h({.memory_size = kMemory});
    uint32_t fault_eip = 0;
    uint32_t limit = 0;
    FlatRunResult r = run(
        h,
        [&](x86::Assembler& a) {
          Label beyond = a.newLabel();
          a.mov(x86::ecx, 5);
          a.mov(x86::ebx, 7);
          a.mov(x86::eax, 0x80000000u);
          a.jc(beyond);  // Not taken (CF clear): a target past the limit is fine.
          c.prepare(a, beyond);
          a.add(x86::eax, x86::eax);  // CF, ZF, OF and PF set.
          fault_eip = kCode + static_cast<uint32_t>(a.offset());
          c.branch(a, beyond);
          limit = c.straddles ? fault_eip + 1 : kCode + static_cast<uint32_t>(a.offset()) - 1;
          a.hlt();
          while (a.offset() < kBeyond) a.nop();
          a.bind(beyond);
          a.hlt();
        },
        [&](CpuState& s) {
          s.eflags &= ~eflags::kArith;
          s.segment(SegReg::kCs) = code_segment(0, limit);
        });
    expect_exception(r, vector::kGp, fault_eip);
    EXPECT_EQ(r.state.reg(Gpr::kEax), 0u);
    EXPECT_EQ(r.state.reg(Gpr::kEbx), 7u);
    EXPECT_EQ(r.state.reg(Gpr::kEcx), 5u);
    EXPECT_EQ(r.state.reg(Gpr::kEsp), c.esp);
    EXPECT_EQ(r.state.eflags & kArithFlags, eflags::kCf | eflags::kZf | eflags::kOf | eflags::kPf);
  }
}

// String instructions through compensated segments run in C++: the same
// program gives the same registers, flags and memory as the host CPU's own
// string instructions on flat segments (DS only limited below 4 GiB, so
// nothing but the compensation differs).
TEST(CompensatedSegments, StringInstructionsMatchTheHostOnFlatSegments) {
  const auto program = [](x86::Assembler& a) {
    test::emit_string_copies(a);
    a.mov(x86::byte_ptr(0x20028), 0xEE);
    a.mov(x86::esi, 0x10000);
    a.mov(x86::edi, 0x20000);
    a.mov(x86::ecx, 64);
    raw(a, {0xF3, 0xA6});  // repe cmpsb: stops at the first difference
    a.pushfd();
    a.mov(x86::ebx, x86::ecx);
    a.mov(x86::edi, 0x10000);
    a.mov(x86::eax, 10);
    a.mov(x86::ecx, 64);
    raw(a, {0xF2, 0xAE});  // repne scasb: finds 10 at offset 9
    a.pushfd();
    a.mov(x86::esi, 0x10004);
    raw(a, {0xAD});  // lodsd
    a.mov(x86::edi, 0x10020);
    raw(a, {0x66, 0xAF});  // scasw: 0x0605 against 0x2221
    a.hlt();
  };
  const auto fill = [](FlatHarness& h) {
    for (int i = 0; i < 64; ++i) h.memory()[0x10000 + i] = static_cast<uint8_t>(i + 1);
  };
  FlatHarness host({.memory_size = kMemory});
  fill(host);
  FlatRunResult want = run(host, program, {});
  FlatHarness compensated({.memory_size = kMemory});
  fill(compensated);
  FlatRunResult got = run(compensated, program, [](CpuState& s) {
    s.segment(SegReg::kDs) = data_segment(0, 0xFFFFFFFEu);
    s.segment(SegReg::kEs) = data_segment(0, 0xFFFFFFFEu);
  });
  ASSERT_EQ(want.stop, FlatRunResult::Stop::kHalt);
  ASSERT_EQ(got.stop, FlatRunResult::Stop::kHalt);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(got.state.gpr[i], want.state.gpr[i]) << "register " << i;
  EXPECT_EQ(got.state.eflags & kArithFlags, want.state.eflags & kArithFlags);
  for (uint32_t slot : {kStack - 4, kStack - 8}) {
    EXPECT_EQ(read32(compensated, slot) & kArithFlags, read32(host, slot) & kArithFlags);
  }
  EXPECT_EQ(0, std::memcmp(compensated.memory().data(), host.memory().data(), kMemory));
  EXPECT_GT(compensated.stats().callouts, 4u) << "the string instructions ran as callouts";
}

TEST(CompensatedSegments, StringInstructionsUseBasesAndStopAtLimits) {
  FlatHarness h({.memory_size = kMemory});
  for (int i = 0; i < 16; ++i) h.memory()[0x20000 + i] = static_cast<uint8_t>(0xA0 + i);
  uint32_t fault_eip = 0;
  FlatRunResult r = run(
      h,
      [&](x86::Assembler& a) {
        a.xor_(x86::esi, x86::esi);
        a.mov(x86::edi, 0xFF8);
        a.mov(x86::ecx, 16);
        fault_eip = kCode + static_cast<uint32_t>(a.offset());
        raw(a, {0xF3, 0xA4});  // rep movsb: the ninth byte is past ES's limit.
        a.hlt();
      },
      [](CpuState& s) {
        s.segment(SegReg::kDs) = data_segment(0x20000, 0xFFFF);
        s.segment(SegReg::kEs) = data_segment(0x60000, 0xFFF);
      });
  expect_exception(r, vector::kGp, fault_eip);
  EXPECT_EQ(r.state.reg(Gpr::kEcx), 8u);
  EXPECT_EQ(r.state.reg(Gpr::kEsi), 8u);
  EXPECT_EQ(r.state.reg(Gpr::kEdi), 0x1000u);
  EXPECT_EQ(h.memory()[0x60000 + 0xFFF], 0xA7);
  EXPECT_EQ(h.memory()[0x61000], 0);
}

}  // namespace
}  // namespace bt86
