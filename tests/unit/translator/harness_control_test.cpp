// Control flow, stack and flags through the flat harness.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "tests/unit/translator/guest_program.h"

namespace bt86 {
namespace {

using namespace asmjit;
using test::load32;

constexpr uint32_t kCode = 0x1000;
constexpr uint32_t kStack = 0x80000;

using test::raw;

FlatRunResult run_program(FlatHarness& h, const std::function<void(x86::Assembler&)>& body,
                          const std::function<void(CpuState&)>& setup = {}) {
  return test::run32(h, kCode, kStack, body, setup);
}

TEST(FlatHarnessControl, CallAndReturnThroughTheLookupTable) {
  FlatHarness h({.memory_size = 1 << 20});
  FlatRunResult r = run_program(h, [](x86::Assembler& a) {
    Label loop = a.newLabel(), fn = a.newLabel();
    a.mov(x86::ecx, 200);
    a.xor_(x86::eax, x86::eax);
    a.bind(loop);
    a.call(fn);
    a.dec(x86::ecx);
    a.jnz(loop);
    a.hlt();
    a.bind(fn);
    a.add(x86::eax, 3);
    a.ret();
  });
  ASSERT_EQ(r.stop, FlatRunResult::Stop::kHalt);
  EXPECT_EQ(r.state.reg(Gpr::kEax), 600u);
  EXPECT_EQ(r.state.reg(Gpr::kEsp), kStack);
  // Only the first return misses; every later one hits inside the cache.
  EXPECT_LE(h.stats().indirect_lookups_missed, 2u);
}

TEST(FlatHarnessControl, IndirectLookupPreservesFlags) {
  FlatHarness h({.memory_size = 1 << 20});
  FlatRunResult r = run_program(h, [](x86::Assembler& a) {
    Label fn = a.newLabel(), loop = a.newLabel();
    a.mov(x86::ecx, 3);
    a.xor_(x86::ebx, x86::ebx);
    a.bind(loop);
    a.call(fn);
    a.seto(x86::dl);     // OF set by fn must survive the return.
    a.adc(x86::ebx, 0);  // So must CF.
    a.movzx(x86::edx, x86::dl);
    a.add(x86::ebx, x86::edx);
    a.dec(x86::ecx);
    a.jnz(loop);
    a.hlt();
    a.bind(fn);
    a.mov(x86::eax, 0x7FFFFFFF);
    a.add(x86::eax, 1);  // OF=1, CF=0
    a.stc();
    a.ret();
  });
  ASSERT_EQ(r.stop, FlatRunResult::Stop::kHalt);
  EXPECT_EQ(r.state.reg(Gpr::kEbx), 6u);
}

TEST(FlatHarnessControl, IndirectJumpAndCallThroughMemory) {
  FlatHarness h({.memory_size = 1 << 20});
  FlatRunResult r = run_program(h, [](x86::Assembler& a) {
    Label fn = a.newLabel(), after = a.newLabel(), table = a.newLabel();
    a.lea(x86::esi, x86::ptr(table));
    a.call(x86::dword_ptr(x86::esi));
    a.lea(x86::edx, x86::ptr(after));
    a.jmp(x86::edx);
    a.int3();
    a.bind(after);
    a.hlt();
    a.bind(fn);
    a.mov(x86::eax, 42);
    a.ret();
    a.align(AlignMode::kData, 4);
    a.bind(table);
    a.embedLabel(fn);
  });
  ASSERT_EQ(r.stop, FlatRunResult::Stop::kHalt);
  EXPECT_EQ(r.state.reg(Gpr::kEax), 42u);
}

TEST(FlatHarnessControl, PushPopEnterLeave) {
  FlatHarness h({.memory_size = 1 << 20});
  FlatRunResult r = run_program(h, [](x86::Assembler& a) {
    a.mov(x86::ebp, 0x1234);
    a.enter(16, 0);
    a.mov(x86::dword_ptr(x86::ebp, -4), 7);
    a.push(0x55);
    a.push(x86::dword_ptr(x86::ebp, -4));
    a.pop(x86::eax);  // 7
    a.pop(x86::ebx);  // 0x55
    a.push(x86::esp);
    a.pop(x86::ecx);  // ESP before the push.
    a.leave();
    a.push(x86::eax);
    a.pop(x86::dword_ptr(x86::esp, -8));  // Address uses the incremented ESP.
    a.mov(x86::edx, x86::dword_ptr(x86::esp, -8));
    raw(a, {0x66, 0x50});  // push ax
    raw(a, {0x66, 0x5E});  // pop si
    a.hlt();
  });
  ASSERT_EQ(r.stop, FlatRunResult::Stop::kHalt);
  EXPECT_EQ(r.state.reg(Gpr::kEax), 7u);
  EXPECT_EQ(r.state.reg(Gpr::kEbx), 0x55u);
  EXPECT_EQ(r.state.reg(Gpr::kEcx), kStack - 4 - 16);
  EXPECT_EQ(r.state.reg(Gpr::kEbp), 0x1234u);
  EXPECT_EQ(r.state.reg(Gpr::kEsp), kStack);
  EXPECT_EQ(r.state.reg(Gpr::kEdx), 7u);
  EXPECT_EQ(r.state.reg(Gpr::kEsi) & 0xFFFF, 7u);
}

TEST(FlatHarnessControl, PushWrapsEspAndFaultsPrecisely) {
  FlatHarness h({.memory_size = 1 << 20});
  FlatRunResult r = run_program(
      h, [](x86::Assembler& a) { a.push(x86::eax); },
      [](CpuState& s) {
        s.reg(Gpr::kEsp) = 2;
        s.reg(Gpr::kEax) = 0xAABBCCDD;
      });
  ASSERT_EQ(r.stop, FlatRunResult::Stop::kException);
  ASSERT_TRUE(r.exception.has_value());
  EXPECT_EQ(r.exception->vector, vector::kPf);
  EXPECT_EQ(r.exception->fault_address, 0xFFFFFFFEu);
  EXPECT_EQ(r.exception->error_code, 2u);
  EXPECT_EQ(r.state.reg(Gpr::kEsp), 2u);
  EXPECT_EQ(r.state.eip, kCode);
}

TEST(FlatHarnessControl, PushfPopfCliStiAndTheIdBit) {
  FlatHarness h({.memory_size = 1 << 20});
  FlatRunResult r = run_program(h, [](x86::Assembler& a) {
    a.sti();
    a.stc();
    a.pushfd();
    a.pop(x86::eax);
    a.mov(x86::ebx, x86::eax);
    a.xor_(x86::eax, 1u << 21);
    a.push(x86::eax);
    a.popfd();
    a.pushfd();
    a.pop(x86::ecx);
    a.cli();
    a.pushfd();
    a.pop(x86::edx);
    a.hlt();
  });
  ASSERT_EQ(r.stop, FlatRunResult::Stop::kHalt);
  const uint32_t eax = r.state.reg(Gpr::kEbx);
  EXPECT_TRUE(eax & eflags::kIf);
  EXPECT_TRUE(eax & eflags::kCf);
  EXPECT_TRUE(eax & eflags::kFixed1);
  EXPECT_TRUE(r.state.reg(Gpr::kEcx) & eflags::kId);
  EXPECT_FALSE(r.state.reg(Gpr::kEdx) & eflags::kIf);
  EXPECT_TRUE(r.state.eflags & eflags::kId);
  EXPECT_FALSE(r.state.eflags & eflags::kIf);
}

// POPF at CPL 0 loads the arithmetic flags, TF, IF, DF, IOPL, NT, AC and ID
// from its image; RF is cleared and VM, VIF, VIP and the reserved bits stay
// as they were (0, and bit 1 set). A 16-bit popf leaves the upper half.
TEST(FlatHarnessControl, PopfOfAllOnesLoadsOnlyTheWritableFlags) {
  FlatHarness h({.memory_size = 1 << 20});
  FlatRunResult r = run_program(h, [](x86::Assembler& a) {
    a.push(Imm(0xFFFFFEFFu));  // All but TF, which would single-step.
    a.popfd();
    a.pushfd();
    a.pop(x86::eax);
    a.push(Imm(0));
    a.popfd();
    a.push(Imm(0xFEFF));
    a.db(0x66);
    a.popfd();  // popfw
    a.pushfd();
    a.pop(x86::ebx);
    a.hlt();
  });
  ASSERT_EQ(r.stop, FlatRunResult::Stop::kHalt);
  EXPECT_EQ(r.state.reg(Gpr::kEax), 0x00247ED7u);
  EXPECT_EQ(r.state.reg(Gpr::kEbx), 0x00007ED7u);
}

TEST(FlatHarnessControl, LoopAndJecxz) {
  FlatHarness h({.memory_size = 1 << 20});
  FlatRunResult r = run_program(h, [](x86::Assembler& a) {
    Label l = a.newLabel(), zero = a.newLabel();
    a.mov(x86::ecx, 10);
    a.xor_(x86::eax, x86::eax);
    a.bind(l);
    a.inc(x86::eax);
    a.loop(l);
    a.jecxz(zero);
    a.mov(x86::eax, 99);
    a.bind(zero);
    a.hlt();
  });
  ASSERT_EQ(r.stop, FlatRunResult::Stop::kHalt);
  EXPECT_EQ(r.state.reg(Gpr::kEax), 10u);
}

TEST(FlatHarnessControl, InstructionsInvalidIn64BitModeRun) {
  FlatHarness h({.memory_size = 1 << 20});
  FlatRunResult r = run_program(h, [](x86::Assembler& a) {
    a.mov(x86::eax, 1);
    a.mov(x86::ecx, 2);
    a.pushad();
    a.xor_(x86::eax, x86::eax);
    a.xor_(x86::ecx, x86::ecx);
    a.popad();
    a.mov(x86::ebx, 0x0909);
    a.xchg(x86::eax, x86::ebx);  // AX = 0x0909
    raw(a, {0xD5, 0x0A});        // aad: AL = 99
    a.xchg(x86::eax, x86::ebx);
    raw(a, {0x0E});  // push cs
    a.pop(x86::edx);
    a.hlt();
  });
  ASSERT_EQ(r.stop, FlatRunResult::Stop::kHalt)
      << int(r.exception->vector) << " at " << std::hex << r.state.eip;
  EXPECT_EQ(r.state.reg(Gpr::kEax), 1u);
  EXPECT_EQ(r.state.reg(Gpr::kEcx), 2u);
  EXPECT_EQ(r.state.reg(Gpr::kEbx), 99u);
  EXPECT_EQ(r.state.reg(Gpr::kEdx) & 0xFFFF, 0x08u);
  EXPECT_EQ(r.state.reg(Gpr::kEsp), kStack);
  EXPECT_EQ(h.stats().callouts, 2u) << "aad and hlt leave the cache, pushad and popad do not";
}

TEST(FlatHarnessControl, RequestStopLeavesAnEndlessLoop) {
  FlatHarness h({.memory_size = 1 << 20});
  load32(h, kCode, [](x86::Assembler& a) {
    Label l = a.newLabel();
    a.bind(l);
    a.inc(x86::eax);
    a.jmp(l);
  });
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    h.request_stop();
  });
  FlatRunResult r = h.run(FlatHarness::initial_state(kCode, kStack));
  stopper.join();
  EXPECT_EQ(r.stop, FlatRunResult::Stop::kStopRequested);
  EXPECT_GT(r.state.reg(Gpr::kEax), 0u);
  EXPECT_TRUE(r.state.eip == kCode || r.state.eip == kCode + 1);
}

}  // namespace
}  // namespace bt86

namespace bt86 {
namespace {

TEST(FlatHarnessCallouts, TrapsAndFaultsFromCallouts) {
  struct Case {
    std::vector<uint8_t> code;
    uint8_t vector;
    uint32_t eip;
  };
  const Case cases[] = {
      {{0xCD, 0x21}, 0x21, kCode + 2},                                       // int 0x21: after
      {{0xB8, 0xFF, 0xFF, 0xFF, 0x7F, 0x40, 0xCE}, vector::kOf, kCode + 7},  // inc; into
      {{0xB8, 5, 0, 0, 0, 0x62, 0x05, 0x00, 0x20, 0, 0}, vector::kBr, kCode + 5},  // bound
      {{0xD4, 0x00}, vector::kDe, kCode},                                          // aam 0
      {{0x0F, 0x22, 0xD8}, vector::kUd, kCode},  // mov cr3, eax: not in the flat harness
  };
  for (const Case& c : cases) {
    FlatHarness h({.memory_size = 1 << 20});
    std::memcpy(h.memory().data() + kCode, c.code.data(), c.code.size());
    const uint32_t bounds[2] = {0, 4};
    std::memcpy(h.memory().data() + 0x2000, bounds, sizeof bounds);
    FlatRunResult r = h.run(FlatHarness::initial_state(kCode, kStack));
    ASSERT_EQ(r.stop, FlatRunResult::Stop::kException);
    EXPECT_EQ(r.exception->vector, c.vector);
    EXPECT_EQ(r.state.eip, c.eip);
  }
}

TEST(FlatHarnessCallouts, NestedEnterBuildsTheDisplay) {
  FlatHarness h({.memory_size = 1 << 20});
  FlatRunResult r = run_program(h, [](x86::Assembler& a) {
    a.mov(x86::ebp, kStack - 0x100);
    a.mov(x86::dword_ptr(kStack - 0x104), 0xAAAA);
    a.enter(8, 2);
    a.hlt();
  });
  ASSERT_EQ(r.stop, FlatRunResult::Stop::kHalt);
  const uint8_t* m = h.memory().data();
  uint32_t saved_ebp, display0, frame;
  std::memcpy(&saved_ebp, m + kStack - 4, 4);
  std::memcpy(&display0, m + kStack - 8, 4);
  std::memcpy(&frame, m + kStack - 12, 4);
  EXPECT_EQ(saved_ebp, kStack - 0x100);
  EXPECT_EQ(display0, 0xAAAAu);
  EXPECT_EQ(frame, kStack - 4);
  EXPECT_EQ(r.state.reg(Gpr::kEbp), kStack - 4);
  EXPECT_EQ(r.state.reg(Gpr::kEsp), kStack - 12 - 8);
}

}  // namespace
}  // namespace bt86

namespace bt86 {
namespace {

TEST(FlatHarnessCallouts, RewrittenCalloutInstructionRunsTheNewBytes) {
  FlatHarness h({.memory_size = 1u << 20});
  test::load_bytes(h, kCode, {0x0f, 0xa2, 0xf4});  // cpuid; hlt
  ASSERT_EQ(h.run(FlatHarness::initial_state(kCode, kStack)).stop, FlatRunResult::Stop::kHalt);
  // Rewritten without invalidate(): the cached unit still exits to the
  // cpuid callout, which must notice the bytes are no longer its
  // instruction.
  test::load_bytes(h, kCode, {0x08, 0xd8, 0xf4});  // or al, bl; hlt
  CpuState s = FlatHarness::initial_state(kCode, kStack);
  s.reg(Gpr::kEax) = 0x11;
  s.reg(Gpr::kEbx) = 0x22;
  const FlatRunResult r = h.run(s);
  ASSERT_EQ(r.stop, FlatRunResult::Stop::kHalt);
  EXPECT_EQ(r.state.eip, kCode + 2);
  EXPECT_EQ(r.state.reg(Gpr::kEax), 0x33u);
  EXPECT_EQ(r.state.reg(Gpr::kEsp), kStack);
}

}  // namespace
}  // namespace bt86
