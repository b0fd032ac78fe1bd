// Guest addresses wrap at 4 GiB; the host addresses translated code forms
// from them do not always. Translated string instructions run as host
// string instructions over window pointers, which do not wrap as the
// guest's ESI and EDI do, and an access through the routed FS reaches the
// window base + FS base + offset, up to 8 GiB past the window base. Both
// must act as on the hardware and never touch host memory outside the
// window.
#include <gtest/gtest.h>

#include <cstring>

#include "tests/unit/translator/guest_program.h"

namespace bt86 {
namespace {

using namespace asmjit;

constexpr uint32_t kCode = 0x1000;
constexpr uint32_t kStack = 0x80000;
constexpr uint32_t kMemory = 1 << 20;

using test::raw;

// Backwards from EDI = 8, the ninth element is at 0xFFFFFFFF, which is not
// guest memory: a not-present write #PF there, with ECX and EDI at that
// element, and nothing written on the host below the window.
TEST(StringWrap, BackwardRepStosWrapsBelowZeroToAPageFaultAtTheTop) {
  FlatHarness h({.memory_size = kMemory});
  uint32_t fault_eip = 0;
  const FlatRunResult r = test::run32(h, kCode, kStack, [&](x86::Assembler& a) {
    a.std();
    a.mov(x86::edi, 8);
    a.mov(x86::ecx, 0x100000);
    a.mov(x86::eax, 0xAA);
    fault_eip = kCode + static_cast<uint32_t>(a.offset());
    raw(a, {0xF3, 0xAA});  // rep stosb
    a.hlt();
  });
  test::expect_page_fault(r, 0xFFFFFFFFu, 2);
  EXPECT_EQ(r.state.eip, fault_eip);
  EXPECT_EQ(r.state.reg(Gpr::kEdi), 0xFFFFFFFFu);
  EXPECT_EQ(r.state.reg(Gpr::kEcx), 0x100000u - 9);
  for (uint32_t i = 0; i <= 8; ++i) EXPECT_EQ(h.memory()[i], 0xAA) << i;
}

// The same wrap through the source: rep movsd backwards from ESI = 4 reads
// 4, then 0, then 0xFFFFFFFC.
TEST(StringWrap, BackwardRepMovsWrapsItsSourceBelowZero) {
  FlatHarness h({.memory_size = kMemory});
  const uint32_t words[2] = {0x11111111, 0x22222222};
  std::memcpy(h.memory().data(), words, sizeof words);
  const FlatRunResult r = test::run32(h, kCode, kStack, [&](x86::Assembler& a) {
    a.std();
    a.mov(x86::esi, 4);
    a.mov(x86::edi, 0x20004);
    a.mov(x86::ecx, 0x10000);
    raw(a, {0xF3, 0xA5});  // rep movsd
    a.hlt();
  });
  test::expect_page_fault(r, 0xFFFFFFFCu, 0);
  EXPECT_EQ(r.state.reg(Gpr::kEsi), 0xFFFFFFFCu);
  EXPECT_EQ(r.state.reg(Gpr::kEdi), 0x1FFFCu);
  EXPECT_EQ(r.state.reg(Gpr::kEcx), 0x10000u - 2);
  uint32_t copied[2];
  std::memcpy(copied, h.memory().data() + 0x20000, sizeof copied);
  EXPECT_EQ(copied[0], 0x11111111u);
  EXPECT_EQ(copied[1], 0x22222222u);
}

// No element can wrap: the host string instruction runs as before,
// forwards from low addresses with a count far above the pointer, backwards
// from high ones, with a count of 0 at 0, and forwards with strlen's count
// of ~0.
TEST(StringWrap, RepStringsThatDoNotWrapStayInTranslatedCode) {
  FlatHarness h({.memory_size = kMemory});
  h.memory()[0x80000] = 0x5A;
  const FlatRunResult r = test::run32(h, kCode, kStack, [&](x86::Assembler& a) {
    a.cld();
    a.mov(x86::edi, 0x2000);
    a.mov(x86::ecx, 0x8000);
    a.mov(x86::eax, 0x5A5A5A5A);
    raw(a, {0xF3, 0xAB});  // rep stosd: 0x2000..0x21FFF
    a.std();
    a.mov(x86::esi, 0x8FFFC);
    a.mov(x86::edi, 0x9FFFC);
    a.mov(x86::ecx, 0x4000);
    raw(a, {0xF3, 0xA5});  // rep movsd: 0x80000..0x8FFFF to 0x90000..0x9FFFF
    a.cld();
    // A count of 0 at pointer 0 (Linux's memcpy of a multiple of 4 bytes
    // runs its rep movsb tail so).
    a.xor_(x86::esi, x86::esi);
    a.xor_(x86::ecx, x86::ecx);
    raw(a, {0xF3, 0xA4});  // rep movsb
    // strlen: repne scasb with ECX = ~0, whose count reaches past 4 GiB:
    // safe forwards through the mirror, found at the zero at 0x22000.
    a.mov(x86::edi, 0x21000);
    a.mov(x86::ecx, 0xFFFFFFFFu);
    a.xor_(x86::eax, x86::eax);
    raw(a, {0xF2, 0xAE});  // repne scasb
    a.mov(x86::ebx, x86::edi);
    a.hlt();
  });
  ASSERT_EQ(r.stop, FlatRunResult::Stop::kHalt);
  EXPECT_EQ(r.state.reg(Gpr::kEbx), 0x22001u);
  EXPECT_EQ(r.state.reg(Gpr::kEcx), 0xFFFFFFFFu - 0x1001);
  EXPECT_EQ(h.stats().callouts, 1u);  // The hlt.
  EXPECT_EQ(h.memory()[0x21FFF], 0x5A);
  EXPECT_EQ(h.memory()[0x22000], 0);
  EXPECT_EQ(h.memory()[0x90000], 0x5A);
  EXPECT_EQ(h.memory()[0x9FFFF], 0);
}

// A source override naming the routed FS (flat but for its base) reads
// through FS's base, as IDENT accesses through it do.
TEST(StringWrap, StringSourceThroughRoutedFsUsesItsBase) {
  FlatHarness h({.memory_size = kMemory});
  h.memory()[0x30010] = 0x77;
  h.memory()[0x30011] = 0x66;
  h.memory()[0x10] = 0x11;
  const FlatRunResult r = test::run32(
      h, kCode, kStack,
      [&](x86::Assembler& a) {
        a.cld();
        a.mov(x86::esi, 0x10);
        a.mov(x86::edi, 0x40000);
        raw(a, {0x64, 0xAC});  // lods al, fs:[esi]
        a.mov(x86::ecx, 1);
        raw(a, {0x64, 0xF3, 0xA4});  // rep movs byte es:[edi], fs:[esi]
        a.hlt();
      },
      [](CpuState& s) { s.segment(SegReg::kFs).base = 0x30000; });
  ASSERT_EQ(r.stop, FlatRunResult::Stop::kHalt);
  EXPECT_EQ(r.state.reg(Gpr::kEax) & 0xFF, 0x77u);
  EXPECT_EQ(h.memory()[0x40000], 0x66);
  EXPECT_EQ(r.state.reg(Gpr::kEsi), 0x12u);
}

// FS base + offset past 4 GiB wraps to low memory, as linear addresses do.
TEST(RoutedSegmentWrap, FsBasePlusOffsetWrapsAt4GiB) {
  FlatHarness h({.memory_size = kMemory});
  h.memory()[0x10] = 0x42;
  const FlatRunResult r = test::run32(
      h, kCode, kStack,
      [&](x86::Assembler& a) {
        raw(a, {0x64, 0xA0, 0x10, 0x10, 0, 0});              // mov al, fs:[0x1010]
        raw(a, {0x64, 0xC6, 0x05, 0x20, 0x10, 0, 0, 0x43});  // mov byte fs:[0x1020], 0x43
        a.hlt();
      },
      [](CpuState& s) { s.segment(SegReg::kFs).base = 0xFFFFF000u; });
  ASSERT_EQ(r.stop, FlatRunResult::Stop::kHalt);
  EXPECT_EQ(r.state.reg(Gpr::kEax) & 0xFF, 0x42u);
  EXPECT_EQ(h.memory()[0x20], 0x43);
}

// Far past the guard above 4 GiB: a guest #PF at the wrapped address.
TEST(RoutedSegmentWrap, FarFsAccessPastFourGiBIsAPageFaultAtTheWrappedAddress) {
  FlatHarness h({.memory_size = kMemory});
  const FlatRunResult r = test::run32(
      h, kCode, kStack,
      [&](x86::Assembler& a) {
        a.mov(x86::ebx, 0xF0000000u);
        raw(a, {0x64, 0x89, 0x03});  // mov fs:[ebx], eax
        a.hlt();
      },
      [](CpuState& s) { s.segment(SegReg::kFs).base = 0x70000000u; });
  test::expect_page_fault(r, 0x60000000u, 2);
}

}  // namespace
}  // namespace bt86
