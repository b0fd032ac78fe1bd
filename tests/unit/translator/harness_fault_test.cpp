// String instructions, precise exceptions, invalidation and cache flushes
// through the flat harness.
#include <gtest/gtest.h>

#include <cstring>

#include "tests/unit/translator/guest_program.h"

namespace bt86 {
namespace {

using namespace asmjit;
using test::load32;

constexpr uint32_t kCode = 0x1000;
constexpr uint32_t kStack = 0x80000;
constexpr uint32_t kMemory = 1 << 20;

using test::raw;

FlatRunResult run_program(FlatHarness& h, const std::function<void(x86::Assembler&)>& body,
                          const std::function<void(CpuState&)>& setup = {}) {
  return test::run32(h, kCode, kStack, body, setup);
}

TEST(FlatHarnessStrings, RepMovsAndStosBothDirections) {
  FlatHarness h({.memory_size = kMemory});
  uint8_t* m = h.memory().data();
  for (int i = 0; i < 64; ++i) m[0x10000 + i] = static_cast<uint8_t>(i + 1);
  FlatRunResult r = run_program(h, [](x86::Assembler& a) {
    test::emit_string_copies(a);
    a.mov(x86::esi, 0x10000);
    a.mov(x86::edi, 0x20000);
    a.mov(x86::ecx, 64);
    raw(a, {0xF3, 0xA6});  // repe cmpsb: all equal
    a.mov(x86::edi, 0x10000);
    a.mov(x86::eax, 10);
    a.mov(x86::ecx, 64);
    raw(a, {0xF2, 0xAE});  // repne scasb: finds 10 at offset 9
    a.hlt();
  });
  ASSERT_EQ(r.stop, FlatRunResult::Stop::kHalt);
  EXPECT_EQ(std::memcmp(m + 0x20000, m + 0x10000, 64), 0);
  EXPECT_EQ(std::memcmp(m + 0x30000, m + 0x10000, 64), 0);
  const uint8_t stos[] = {0xCD, 0xAB, 0xCD, 0xAB, 0xCD, 0xAB, 0};
  EXPECT_EQ(std::memcmp(m + 0x40000, stos, sizeof stos), 0);
  EXPECT_EQ(r.state.reg(Gpr::kEdi), 0x1000Au);
  EXPECT_EQ(r.state.reg(Gpr::kEcx), 54u);
  EXPECT_TRUE(r.state.eflags & eflags::kZf);
  EXPECT_FALSE(r.state.eflags & eflags::kDf);
}

TEST(FlatHarnessStrings, FaultInTheMiddleOfRepMovsIsPrecise) {
  FlatHarness h({.memory_size = kMemory});
  h.set_page_access(0x21000, 0x1000, PageAccess::kRead);
  FlatRunResult r = run_program(h, [](x86::Assembler& a) {
    a.mov(x86::esi, 0x10000);
    a.mov(x86::edi, 0x20F00);
    a.mov(x86::ecx, 0x100);
    a.stc();
    raw(a, {0xF3, 0xA5});  // rep movsd: the 65th dword hits the read-only page
    a.hlt();
  });
  ASSERT_EQ(r.stop, FlatRunResult::Stop::kException);
  EXPECT_EQ(r.exception->vector, vector::kPf);
  EXPECT_EQ(r.exception->fault_address, 0x21000u);
  EXPECT_EQ(r.exception->error_code, 3u);
  EXPECT_EQ(r.state.eip, kCode + 16);
  EXPECT_EQ(r.state.reg(Gpr::kEcx), 0x100u - 64);
  EXPECT_EQ(r.state.reg(Gpr::kEsi), 0x10000u + 256);
  EXPECT_EQ(r.state.reg(Gpr::kEdi), 0x21000u);
  EXPECT_TRUE(r.state.eflags & eflags::kCf);
}

TEST(FlatHarnessFaults, DivideErrorAtTheDivision) {
  FlatHarness h({.memory_size = kMemory});
  FlatRunResult r = run_program(h, [](x86::Assembler& a) {
    a.mov(x86::eax, 10);
    a.xor_(x86::edx, x86::edx);
    a.xor_(x86::ecx, x86::ecx);
    a.div(x86::ecx);
    a.hlt();
  });
  ASSERT_EQ(r.stop, FlatRunResult::Stop::kException);
  EXPECT_EQ(r.exception->vector, vector::kDe);
  EXPECT_EQ(r.state.eip, kCode + 9);
  EXPECT_EQ(r.state.reg(Gpr::kEax), 10u);
}

TEST(FlatHarnessFaults, InvalidOpcodeAndBreakpoint) {
  FlatHarness h({.memory_size = kMemory});
  FlatRunResult ud = run_program(h, [](x86::Assembler& a) {
    a.mov(x86::eax, 5);
    a.ud2();
  });
  ASSERT_EQ(ud.stop, FlatRunResult::Stop::kException);
  EXPECT_EQ(ud.exception->vector, vector::kUd);
  EXPECT_EQ(ud.state.eip, kCode + 5);
  EXPECT_EQ(ud.state.reg(Gpr::kEax), 5u);

  FlatHarness h2({.memory_size = kMemory});
  FlatRunResult undecodable = run_program(h2, [](x86::Assembler& a) {
    raw(a, {0x90, 0x0F, 0xFF});
  });
  ASSERT_EQ(undecodable.stop, FlatRunResult::Stop::kException);
  EXPECT_EQ(undecodable.exception->vector, vector::kUd);
  EXPECT_EQ(undecodable.state.eip, kCode + 1);

  FlatHarness h3({.memory_size = kMemory});
  FlatRunResult bp = run_program(h3, [](x86::Assembler& a) {
    a.inc(x86::ebx);
    a.int3();
  });
  ASSERT_EQ(bp.stop, FlatRunResult::Stop::kException);
  EXPECT_EQ(bp.exception->vector, vector::kBp);
  EXPECT_EQ(bp.state.eip, kCode + 2);  // Trap: after the int3.
  EXPECT_EQ(bp.state.reg(Gpr::kEbx), 1u);
}

TEST(FlatHarnessFaults, PageFaultsReportAddressAndErrorCode) {
  FlatHarness h({.memory_size = kMemory});
  h.set_page_access(0x50000, 0x1000, PageAccess::kNone);
  FlatRunResult outside = run_program(h, [](x86::Assembler& a) {
    a.mov(x86::ebx, 0xFFFFFFF0);
    a.mov(x86::eax, x86::dword_ptr(x86::ebx, 0x24));  // wraps to 0x14: fine
    a.mov(x86::eax, x86::dword_ptr(x86::ebx, 0x8));   // 0xFFFFFFF8: outside memory
  });
  ASSERT_EQ(outside.stop, FlatRunResult::Stop::kException);
  EXPECT_EQ(outside.exception->vector, vector::kPf);
  EXPECT_EQ(outside.exception->fault_address, 0xFFFFFFF8u);
  EXPECT_EQ(outside.exception->error_code, 0u);
  EXPECT_EQ(outside.state.eip, kCode + 8);

  FlatRunResult none = run_program(h, [](x86::Assembler& a) {
    a.mov(x86::dword_ptr(0x50010), x86::eax);  // absolute disp32
  });
  ASSERT_EQ(none.stop, FlatRunResult::Stop::kException);
  EXPECT_EQ(none.exception->fault_address, 0x50010u);
  EXPECT_EQ(none.exception->error_code, 2u);

  FlatRunResult fetch = run_program(h, [](x86::Assembler& a) {
    a.mov(x86::eax, 0x50000);
    a.jmp(x86::eax);
  });
  ASSERT_EQ(fetch.stop, FlatRunResult::Stop::kException);
  EXPECT_EQ(fetch.exception->vector, vector::kPf);
  EXPECT_EQ(fetch.exception->fault_address, 0x50000u);
  EXPECT_EQ(fetch.state.eip, 0x50000u);
}

// pushad stores from the top down and popad loads from the bottom up, as the
// hardware does: a fault part way reports the address the hardware reports
// and leaves every register as it was; pushad's stores above it are done.
TEST(FlatHarnessFaults, PushadAndPopadFaultPartWayAsTheHardwareDoes) {
  FlatHarness h({.memory_size = kMemory});
  h.set_page_access(0x50000, 0x1000, PageAccess::kRead);
  h.set_page_access(0x60000, 0x1000, PageAccess::kNone);
  uint32_t at = 0;
  FlatRunResult push = run_program(h, [&](x86::Assembler& a) {
    a.mov(x86::esp, 0x51010);
    a.mov(x86::eax, 0xA0A0A0A0);
    a.mov(x86::ebx, 0xB0B0B0B0);
    at = kCode + static_cast<uint32_t>(a.offset());
    a.pushad();  // EAX, ECX, EDX, EBX above 0x51000; the ESP slot at 0x50FFC faults.
  });
  test::expect_page_fault(push, 0x50FFC, 3);
  EXPECT_EQ(push.state.eip, at);
  EXPECT_EQ(push.state.reg(Gpr::kEsp), 0x51010u);
  uint32_t top = 0, fourth = 0;
  std::memcpy(&top, h.memory().data() + 0x5100C, 4);
  std::memcpy(&fourth, h.memory().data() + 0x51000, 4);
  EXPECT_EQ(top, 0xA0A0A0A0u);
  EXPECT_EQ(fourth, 0xB0B0B0B0u);

  FlatRunResult pop = run_program(h, [&](x86::Assembler& a) {
    a.mov(x86::esp, 0x5FFF4);
    a.mov(x86::edi, 0x1D1);
    a.mov(x86::esi, 0x151);
    a.mov(x86::ebp, 0xB9);
    at = kCode + static_cast<uint32_t>(a.offset());
    // EDI, ESI, EBP from below 0x60000, the ESP slot there skipped, EBX's
    // load at 0x60004 faults.
    a.popad();
  });
  test::expect_page_fault(pop, 0x60004, 0);
  EXPECT_EQ(pop.state.eip, at);
  EXPECT_EQ(pop.state.reg(Gpr::kEsp), 0x5FFF4u);
  EXPECT_EQ(pop.state.reg(Gpr::kEdi), 0x1D1u);
  EXPECT_EQ(pop.state.reg(Gpr::kEsi), 0x151u);
  EXPECT_EQ(pop.state.reg(Gpr::kEbp), 0xB9u);
}

TEST(FlatHarnessCache, InvalidationRetranslatesModifiedCode) {
  FlatHarness h({.memory_size = kMemory});
  load32(h, kCode, [](x86::Assembler& a) {
    a.mov(x86::eax, 1);
    a.hlt();
  });
  FlatRunResult first = h.run(FlatHarness::initial_state(kCode, kStack));
  EXPECT_EQ(first.state.reg(Gpr::kEax), 1u);
  h.memory()[kCode + 1] = 2;
  h.invalidate(kCode + 1, 1);
  FlatRunResult second = h.run(FlatHarness::initial_state(kCode, kStack));
  EXPECT_EQ(second.state.reg(Gpr::kEax), 2u);
  EXPECT_EQ(h.stats().units_translated, 2u);
}

TEST(FlatHarnessCache, FullCacheFlushesAndStaysCorrect) {
  FlatHarness h({.memory_size = kMemory, .translation_cache_size = 64 << 10});
  // 2000 small units chained by jumps: far more code than 64 KiB of cache.
  load32(h, kCode, [](x86::Assembler& a) {
    std::vector<Label> labels(2000);
    for (auto& l : labels) l = a.newLabel();
    a.xor_(x86::eax, x86::eax);
    for (size_t i = 0; i < labels.size(); ++i) {
      a.bind(labels[i]);
      a.add(x86::eax, static_cast<int>(i));
      if (i + 1 < labels.size()) a.jmp(labels[i + 1]);
    }
    a.hlt();
  });
  FlatRunResult r = h.run(FlatHarness::initial_state(kCode, kStack));
  ASSERT_EQ(r.stop, FlatRunResult::Stop::kHalt);
  EXPECT_EQ(r.state.reg(Gpr::kEax), 1999u * 2000u / 2u);
  EXPECT_GE(h.stats().cache_flushes, 1u);
}

}  // namespace
}  // namespace bt86
