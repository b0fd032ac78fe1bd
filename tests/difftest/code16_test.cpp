// 16-bit code (a code segment with D clear) run natively in compatibility
// mode and through the translator, compared register for register, flag for
// flag and byte for byte, from many random starting states. The snippets
// cover what 16-bit code changes: default operand and address sizes, 16-bit
// addressing with its wrap at 64 KiB and SS default for BP, 32-bit forms
// through 66/67, near calls and returns pushing IP, loop/jcxz on CX,
// 16-bit enter/leave, string instructions on SI/DI/CX, and faults. Each
// runs on a 32-bit stack and on a 16-bit one (SS.B clear, ESP's upper half
// random), as does a 32-bit snippet of stack instructions (nested enter,
// pusha/popa, push/pop of memory).
//
// The bytes below are this GNU as source (.code16, the last snippet .code32),
// linked at 0x1000:
//   .code16
//   .text
//   # 1 alu
//   s_alu:
//    add %bx,%ax; adc %cx,%dx; sub $0x1234,%si; sbb %ax,%di; and %dx,%bx; or $0x77,%cx
//    xor %ax,%bp; inc %ax; dec %bx; neg %cx; not %dx; addl %ebx,%eax; subl $0x12345678,%ecx
//    imul %bx,%cx; imul $-300,%dx,%si; shl $3,%ax; sar %cl,%bx; rol $1,%dx; shrd $4,%bx,%ax
//    cmp %ax,%bx; hlt
//   # 2 mul/div
//   s_muldiv:
//    mul %bx; imul %cx; movw $0x7, %cx; xor %dx,%dx; div %cx; cwd; mov $-3,%bx; idiv %bx; cbw; hlt
//   # 3 addressing: si/bx/bp/di set to data-area offsets, upper halves random
//   s_mem:
//    mov $0x8000,%bx; mov $0x0100,%si; mov $0x8800,%bp; mov $0x0010,%di
//    mov (%bx,%si),%ax; add %ax,(%bx,%di); mov 4(%bp,%si),%cx; xor %cx,-2(%bp,%di)
//    mov 0x8400,%dx; addl %edx,0x8404; mov 0x8200(%si),%ax; mov %ax,0x8000(%si)
//    lea 0x10(%bx,%si),%ax; leal -3(%bp,%di),%edx; incw 6(%bx); notb 0x81(%bp)
//    hlt
//   # 4 wrap: bx+si wraps at 64K, disp wraps
//   s_wrap:
//    mov $0xFFF0,%bx; mov $0x8120,%si; mov (%bx,%si),%ax; mov $0x9000,%di
//    mov -0x1000(%di),%cx; movl $0x89abcdef,0x10(%bx,%di); lea 0x20(%bx),%dx; mov $0x8000,%bx;
//    xlat; hlt
//   # 5 32-bit addressing in 16-bit code
//   s_addr32:
//    mov $0x9000,%esi; mov $4,%ecx; movl (%esi,%ecx,4),%eax; addr32 mov %ax,0x100(%esi); hlt
//   # 6 near control flow
//   s_flow:
//    call 1f; jmp 2f
//   1: inc %ax; ret
//   2: mov $5,%cx
//   3: inc %dx; loop 3b
//    mov $0,%cx; jcxz 4f; inc %bx
//   4: cmp %ax,%bx; jl 5f; dec %si
//   5: mov $0x10,%cx
//   6: dec %di; cmp $0,%di; loopne 6b
//    mov $7f,%bx; call *%bx; jmp 8f
//   7: add $2,%ax; ret $0
//   8: hlt
//   # 7 stack
//   s_stack:
//    push %ax; pushl %ebx; push $0x1234; pushl $-5; pop %cx; popl %edx; pop %si; pop %di
//    movl $0xE800,%ebp; enter $8,$0; mov %sp,%ax; leave; enter $4,$2; mov %bp,%bx; leave
//    hlt
//   # 8 strings
//   s_string:
//    mov $0x8000,%si; mov $0x8400,%di; mov $5,%cx; cld; rep movsb
//    mov $3,%cx; mov $0xABCD,%ax; rep stosw; std; mov $0x8010,%si; lodsw; lodsb
//    mov $0x8000,%si; mov $0x8400,%di; mov $4,%cx; cld; repe cmpsb; mov $0x20,%cx; mov $0,%al;
//    repne scasb movl $0x8100,%esi; movl $0x8500,%edi; addr32 movsw; hlt
//   # 9 loop over 16 bits: CX=0 loops 65536 times
//   s_loopcx:
//    xor %cx,%cx
//   1: inc %ax; loop 1b
//    hlt
//   # 10 faults
//   s_ud:
//    inc %ax; ud2
//   s_de:
//    xor %bx,%bx; div %bx; hlt
//   s_pf:
//    mov $0xD000,%bx; mov (%bx),%ax; hlt
//   # 10b bound with 16-bit addressing (a callout)
//   s_bound:
//    movw $-100,0x8600; movw $100,0x8602; mov $5,%ax; mov $0x8610,%bx; mov $0xFFF0,%si
//    bound %ax,(%bx,%si); hlt
//   # 11 ret 16 with imm
//   s_ret:
//    call 1f; jmp 2f
//   1: ret $4
//   2: hlt
//   # 12 32-bit code: the stack instructions, on a 32-bit or a 16-bit stack
//   .code32
//   s32_stack:
//    push %eax; pushw %bx; push $0x12345678; pop %ecx; popw %dx; pop %esi
//    call 1f; jmp 2f
//   1: ret
//   2: enter $8,$0; mov %esp,%eax; mov %ebp,%ecx; leave; movl $0xE800,%ebp; enter $12,$3; mov
//   %ebp,%ebx; mov %esp,%edi; leave
//    pusha; popa; pushl 0x8000; popl %edx; hlt
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "runtime/flat_harness.h"
#include "runtime/native_compat_runner.h"

namespace bt86 {
namespace {

constexpr uint32_t kCode = 0x1000;
constexpr uint32_t kCompared = 0x8000;  // Data and stack: [0x8000, 0x10000).
constexpr uint32_t kNoAccessPage = 0xD000;
constexpr uint32_t kStackTop = 0xF000;
constexpr uint32_t kMemory = 0x10000;
constexpr uint32_t kArith = eflags::kArith;

constexpr uint8_t kSnippets[] = {
    0x01, 0xD8, 0x11, 0xCA, 0x81, 0xEE, 0x34, 0x12, 0x19, 0xC7, 0x21, 0xD3, 0x83, 0xC9, 0x77, 0x31,
    0xC5, 0x40, 0x4B, 0xF7, 0xD9, 0xF7, 0xD2, 0x66, 0x01, 0xD8, 0x66, 0x81, 0xE9, 0x78, 0x56, 0x34,
    0x12, 0x0F, 0xAF, 0xCB, 0x69, 0xF2, 0xD4, 0xFE, 0xC1, 0xE0, 0x03, 0xD3, 0xFB, 0xD1, 0xC2, 0x0F,
    0xAC, 0xD8, 0x04, 0x39, 0xC3, 0xF4, 0xF7, 0xE3, 0xF7, 0xE9, 0xB9, 0x07, 0x00, 0x31, 0xD2, 0xF7,
    0xF1, 0x99, 0xBB, 0xFD, 0xFF, 0xF7, 0xFB, 0x98, 0xF4, 0xBB, 0x00, 0x80, 0xBE, 0x00, 0x01, 0xBD,
    0x00, 0x88, 0xBF, 0x10, 0x00, 0x8B, 0x00, 0x01, 0x01, 0x8B, 0x4A, 0x04, 0x31, 0x4B, 0xFE, 0x8B,
    0x16, 0x00, 0x84, 0x66, 0x01, 0x16, 0x04, 0x84, 0x8B, 0x84, 0x00, 0x82, 0x89, 0x84, 0x00, 0x80,
    0x8D, 0x40, 0x10, 0x66, 0x8D, 0x53, 0xFD, 0xFF, 0x47, 0x06, 0xF6, 0x96, 0x81, 0x00, 0xF4, 0xBB,
    0xF0, 0xFF, 0xBE, 0x20, 0x81, 0x8B, 0x00, 0xBF, 0x00, 0x90, 0x8B, 0x8D, 0x00, 0xF0, 0x66, 0xC7,
    0x41, 0x10, 0xEF, 0xCD, 0xAB, 0x89, 0x8D, 0x57, 0x20, 0xBB, 0x00, 0x80, 0xD7, 0xF4, 0x66, 0xBE,
    0x00, 0x90, 0x00, 0x00, 0x66, 0xB9, 0x04, 0x00, 0x00, 0x00, 0x67, 0x66, 0x8B, 0x04, 0x8E, 0x67,
    0x89, 0x86, 0x00, 0x01, 0x00, 0x00, 0xF4, 0xE8, 0x02, 0x00, 0xEB, 0x02, 0x40, 0xC3, 0xB9, 0x05,
    0x00, 0x42, 0xE2, 0xFD, 0xB9, 0x00, 0x00, 0xE3, 0x01, 0x43, 0x39, 0xC3, 0x7C, 0x01, 0x4E, 0xB9,
    0x10, 0x00, 0x4F, 0x83, 0xFF, 0x00, 0xE0, 0xFA, 0xBB, 0xDF, 0x10, 0xFF, 0xD3, 0xEB, 0x06, 0x83,
    0xC0, 0x02, 0xC2, 0x00, 0x00, 0xF4, 0x50, 0x66, 0x53, 0x68, 0x34, 0x12, 0x66, 0x6A, 0xFB, 0x59,
    0x66, 0x5A, 0x5E, 0x5F, 0x66, 0xBD, 0x00, 0xE8, 0x00, 0x00, 0xC8, 0x08, 0x00, 0x00, 0x89, 0xE0,
    0xC9, 0xC8, 0x04, 0x00, 0x02, 0x89, 0xEB, 0xC9, 0xF4, 0xBE, 0x00, 0x80, 0xBF, 0x00, 0x84, 0xB9,
    0x05, 0x00, 0xFC, 0xF3, 0xA4, 0xB9, 0x03, 0x00, 0xB8, 0xCD, 0xAB, 0xF3, 0xAB, 0xFD, 0xBE, 0x10,
    0x80, 0xAD, 0xAC, 0xBE, 0x00, 0x80, 0xBF, 0x00, 0x84, 0xB9, 0x04, 0x00, 0xFC, 0xF3, 0xA6, 0xB9,
    0x20, 0x00, 0xB0, 0x00, 0xF2, 0xAE, 0x66, 0xBE, 0x00, 0x81, 0x00, 0x00, 0x66, 0xBF, 0x00, 0x85,
    0x00, 0x00, 0x67, 0xA5, 0xF4, 0x31, 0xC9, 0x40, 0xE2, 0xFD, 0xF4, 0x40, 0x0F, 0x0B, 0x31, 0xDB,
    0xF7, 0xF3, 0xF4, 0xBB, 0x00, 0xD0, 0x8B, 0x07, 0xF4, 0xC7, 0x06, 0x00, 0x86, 0x9C, 0xFF, 0xC7,
    0x06, 0x02, 0x86, 0x64, 0x00, 0xB8, 0x05, 0x00, 0xBB, 0x10, 0x86, 0xBE, 0xF0, 0xFF, 0x62, 0x00,
    0xF4, 0xE8, 0x02, 0x00, 0xEB, 0x03, 0xC2, 0x04, 0x00, 0xF4, 0x50, 0x66, 0x53, 0x68, 0x78, 0x56,
    0x34, 0x12, 0x59, 0x66, 0x5A, 0x5E, 0xE8, 0x02, 0x00, 0x00, 0x00, 0xEB, 0x01, 0xC3, 0xC8, 0x08,
    0x00, 0x00, 0x89, 0xE0, 0x89, 0xE9, 0xC9, 0xBD, 0x00, 0xE8, 0x00, 0x00, 0xC8, 0x0C, 0x00, 0x03,
    0x89, 0xEB, 0x89, 0xE7, 0xC9, 0x60, 0x61, 0xFF, 0x35, 0x00, 0x80, 0x00, 0x00, 0x5A, 0xF4,
};

struct Snippet {
  const char* name;
  uint32_t entry;
  uint32_t undefined_flags;  // Arithmetic flags the SDM leaves undefined at the end.
  FlatRunResult::Stop stop;
  bool code_16;   // CS.D clear.
  bool stack_16;  // SS.B clear: SP alone moves, and ESP's upper half is kept.
};

constexpr Snippet kEntries[] = {
    {"alu", 0x1000, 0, FlatRunResult::Stop::kHalt, true, false},
    {"alu_ss16", 0x1000, 0, FlatRunResult::Stop::kHalt, true, true},
    {"muldiv", 0x1036, kArith, FlatRunResult::Stop::kHalt, true, false},
    {"muldiv_ss16", 0x1036, kArith, FlatRunResult::Stop::kHalt, true, true},
    {"mem", 0x1049, 0, FlatRunResult::Stop::kHalt, true, false},
    {"mem_ss16", 0x1049, 0, FlatRunResult::Stop::kHalt, true, true},
    {"wrap", 0x107F, 0, FlatRunResult::Stop::kHalt, true, false},
    {"wrap_ss16", 0x107F, 0, FlatRunResult::Stop::kHalt, true, true},
    {"addr32", 0x109E, 0, FlatRunResult::Stop::kHalt, true, false},
    {"addr32_ss16", 0x109E, 0, FlatRunResult::Stop::kHalt, true, true},
    {"flow", 0x10B7, 0, FlatRunResult::Stop::kHalt, true, false},
    {"flow_ss16", 0x10B7, 0, FlatRunResult::Stop::kHalt, true, true},
    {"stack", 0x10E6, 0, FlatRunResult::Stop::kHalt, true, false},
    {"stack_ss16", 0x10E6, 0, FlatRunResult::Stop::kHalt, true, true},
    {"string", 0x1109, 0, FlatRunResult::Stop::kHalt, true, false},
    {"string_ss16", 0x1109, 0, FlatRunResult::Stop::kHalt, true, true},
    {"loopcx", 0x1145, 0, FlatRunResult::Stop::kHalt, true, false},
    {"loopcx_ss16", 0x1145, 0, FlatRunResult::Stop::kHalt, true, true},
    {"ud", 0x114B, 0, FlatRunResult::Stop::kException, true, false},
    {"ud_ss16", 0x114B, 0, FlatRunResult::Stop::kException, true, true},
    {"de", 0x114E, eflags::kAf, FlatRunResult::Stop::kException, true, false},
    {"de_ss16", 0x114E, eflags::kAf, FlatRunResult::Stop::kException, true, true},
    {"pf", 0x1153, 0, FlatRunResult::Stop::kException, true, false},
    {"pf_ss16", 0x1153, 0, FlatRunResult::Stop::kException, true, true},
    {"bound", 0x1159, 0, FlatRunResult::Stop::kHalt, true, false},
    {"bound_ss16", 0x1159, 0, FlatRunResult::Stop::kHalt, true, true},
    {"ret", 0x1171, 0, FlatRunResult::Stop::kHalt, true, false},
    {"ret_ss16", 0x1171, 0, FlatRunResult::Stop::kHalt, true, true},
    {"32_stack", 0x117A, 0, FlatRunResult::Stop::kHalt, false, false},
    {"32_stack_ss16", 0x117A, 0, FlatRunResult::Stop::kHalt, false, true},
};

class Code16Test : public ::testing::TestWithParam<Snippet> {
 protected:
  Code16Test()
      : native_(signals_, {.memory_size = kMemory, .timeout_ms = 2000}),
        harness_({.memory_size = kMemory}) {
    native_.set_page_access(kNoAccessPage, 0x1000, PageAccess::kNone);
    harness_.set_page_access(kNoAccessPage, 0x1000, PageAccess::kNone);
  }

  HostSignalThread signals_;
  NativeCompatRunner native_;
  FlatHarness harness_;
};

std::string where(const Snippet& s, uint32_t seed) {
  return std::string(s.name) + " seed " + std::to_string(seed);
}

TEST_P(Code16Test, MatchesTheHostCpu) {
  const Snippet& snippet = GetParam();
  for (uint32_t seed = 0; seed < 200; ++seed) {
    std::mt19937 rng(seed);
    std::vector<uint8_t> image(kMemory);
    for (uint32_t a = kCompared; a < kMemory; ++a) image[a] = static_cast<uint8_t>(rng());
    std::memcpy(image.data() + kCode, kSnippets, sizeof kSnippets);
    CpuState start = FlatHarness::initial_state(snippet.entry, kStackTop);
    for (int i = 0; i < kNumGprs; ++i) {
      if (i != static_cast<int>(Gpr::kEsp)) start.gpr[i] = rng();
    }
    start.eflags = (rng() & kArith) | eflags::kFixed1;
    start.segment(SegReg::kCs).db = !snippet.code_16;
    start.segment(SegReg::kSs).db = !snippet.stack_16;
    if (snippet.stack_16) start.reg(Gpr::kEsp) |= rng() & 0xFFFF0000u;

    std::memcpy(native_.memory().data(), image.data(), kMemory);
    const FlatRunResult n = native_.run(start);
    std::memcpy(harness_.memory().data(), image.data(), kMemory);
    harness_.invalidate(0, kMemory);
    const FlatRunResult t = harness_.run(start);

    const std::string at = where(snippet, seed);
    ASSERT_EQ(n.stop, snippet.stop) << at;
    ASSERT_EQ(t.stop, n.stop) << at;
    ASSERT_EQ(t.exception.has_value(), n.exception.has_value()) << at;
    if (n.exception) {
      EXPECT_EQ(t.exception->vector, n.exception->vector) << at;
      EXPECT_EQ(t.exception->fault_address, n.exception->fault_address) << at;
    }
    EXPECT_EQ(t.state.eip, n.state.eip) << at;
    for (int i = 0; i < kNumGprs; ++i) {
      EXPECT_EQ(t.state.gpr[i], n.state.gpr[i]) << at << " register " << i;
    }
    const uint32_t defined = (kArith & ~snippet.undefined_flags) | eflags::kDf;
    EXPECT_EQ(t.state.eflags & defined, n.state.eflags & defined) << at;
    for (uint32_t a = kCompared; a < kMemory; ++a) {
      if (a >= kNoAccessPage && a < kNoAccessPage + 0x1000) continue;
      ASSERT_EQ(harness_.memory()[a], native_.memory()[a]) << at << " byte at " << a;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Snippets, Code16Test, ::testing::ValuesIn(kEntries),
                         [](const ::testing::TestParamInfo<Snippet>& info) {
                           return std::string(info.param.name);
                         });

}  // namespace
}  // namespace bt86
