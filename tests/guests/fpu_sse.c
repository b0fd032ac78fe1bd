/* fpu_sse: x87 and SSE state and arithmetic, which bt86 keeps in the host
 * registers while translated code runs. Checks CPUID's FPU/FXSR/SSE/SSE2
 * bits, the x87 state after fninit, exact IEEE results (integer multiply
 * through the FPU, sqrt(2), a masked divide by zero giving +inf with the ZE
 * flag), #NM with CR0.TS set, #UD for SSE with CR4.OSFXSR clear, SSE and
 * SSE2 arithmetic, MXCSR's reset value, and an fxsave/fxrstor round trip.
 * The C code uses no floating point (-mgeneral-regs-only): every value is
 * checked by its bits, and the asm blocks need no x87/SSE clobbers. */
#include "tests/guests/lib/guest.h"
#include "tests/guests/lib/x86.h"

#define CR0_MP (1u << 1)
#define CR0_EM (1u << 2)
#define CR0_TS (1u << 3)
#define CR4_OSFXSR (1u << 9)
#define CR4_OSXMMEXCPT (1u << 10)
#define SQRT2_DOUBLE 0x3FF6A09E667F3BCDull
#define PLUS_INF_DOUBLE 0x7FF0000000000000ull

__asm__(
    ".text\n"
    "x87_with_ts:\n"
    "x87_ts_insn: fld1\n"
    "x87_ts_next: ret\n"
    "sse_without_osfxsr:\n"
    "sse_ud_insn: xorps %xmm0, %xmm0\n"
    "sse_ud_next: ret\n");
void x87_with_ts(void);
void sse_without_osfxsr(void);
extern const char x87_ts_insn[], x87_ts_next[], sse_ud_insn[], sse_ud_next[];

static void cpuid(uint32_t leaf, uint32_t* a, uint32_t* b, uint32_t* c, uint32_t* d) {
  __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(0));
}

static void check_x87(void) {
  kprintf("x87\n");
  uint16_t control = 0, status = 0xFFFF;
  __asm__ volatile("fninit; fnstcw %0; fnstsw %1" : "=m"(control), "=m"(status));
  check_eq("control word after fninit", control, 0x037F);
  check_eq("status word after fninit", status, 0);

  int32_t a = 7, b = -6, product = 0;
  __asm__ volatile("fildl %1; fildl %2; fmulp; fistpl %0" : "=m"(product) : "m"(a), "m"(b));
  check_eq("7 * -6 through the FPU", (uint32_t)product, (uint32_t)-42);

  int32_t two = 2;
  uint64_t root = 0;
  __asm__ volatile("fildl %1; fsqrt; fstpl %0" : "=m"(root) : "m"(two));
  check("sqrt(2) as a double", root == SQRT2_DOUBLE);

  int32_t one = 1, zero = 0;
  uint64_t quotient = 0;
  __asm__ volatile("fnclex; fildl %2; fidivl %3; fstpl %0; fnstsw %1"
                   : "=m"(quotient), "=m"(status)
                   : "m"(one), "m"(zero));
  check("1 / 0 masked gives +inf", quotient == PLUS_INF_DOUBLE);
  check_eq("status word ZE flag", status & 0x4, 0x4);
  __asm__ volatile("fnclex");
}

static void check_device_not_available(void) {
  kprintf("#NM with CR0.TS\n");
  write_cr0(read_cr0() | CR0_TS);
  struct caught_trap t;
  if (!check("fld1 faults", trap_catch(x87_with_ts, x87_ts_next, &t))) t = (struct caught_trap){0};
  check_eq("vector", t.frame.vector, 7);
  check_eq("saved eip", t.frame.eip, (uint32_t)x87_ts_insn);
  __asm__ volatile("clts");
  check("after clts fld1 runs", !trap_catch(x87_with_ts, x87_ts_next, &t));
  __asm__ volatile("fninit");
}

static void check_sse(void) {
  kprintf("SSE with CR4.OSFXSR clear\n");
  struct caught_trap t;
  if (!check("xorps faults", trap_catch(sse_without_osfxsr, sse_ud_next, &t))) {
    t = (struct caught_trap){0};
  }
  check_eq("vector", t.frame.vector, 6);
  check_eq("saved eip", t.frame.eip, (uint32_t)sse_ud_insn);

  kprintf("SSE\n");
  write_cr4(read_cr4() | CR4_OSFXSR | CR4_OSXMMEXCPT);
  uint32_t mxcsr = 0;
  __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
  check_eq("MXCSR reset value", mxcsr, 0x1F80);

  static const int32_t x[4] __attribute__((aligned(16))) = {1, 2, 3, 4};
  static const int32_t y[4] __attribute__((aligned(16))) = {10, 20, 30, -40};
  int32_t sum[4] __attribute__((aligned(16))) = {0};
  __asm__ volatile(
      "cvtdq2ps %1, %%xmm0; cvtdq2ps %2, %%xmm1; addps %%xmm1, %%xmm0; mulps %%xmm0, %%xmm0;"
      "cvttps2dq %%xmm0, %%xmm0; movaps %%xmm0, %0"
      : "=m"(sum)
      : "m"(x), "m"(y));
  check("(x + y)^2 in packed singles",
        sum[0] == 121 && sum[1] == 484 && sum[2] == 1089 && sum[3] == 1296);

  int32_t two = 2;
  uint64_t root = 0;
  __asm__ volatile("cvtsi2sdl %1, %%xmm2; sqrtsd %%xmm2, %%xmm2; movsd %%xmm2, %0"
                   : "=m"(root)
                   : "m"(two));
  check("sqrtsd(2)", root == SQRT2_DOUBLE);

  static uint8_t area[512] __attribute__((aligned(16)));
  static const uint32_t pattern[4]
      __attribute__((aligned(16))) = {0x01234567, 0x89abcdef, 0xfedcba98, 0x76543210};
  uint32_t back[4] __attribute__((aligned(16))) = {0};
  __asm__ volatile(
      "movaps %2, %%xmm3; fxsave %1; xorps %%xmm3, %%xmm3; fxrstor %1; movaps %%xmm3, %0"
      : "=m"(back), "+m"(area)
      : "m"(pattern));
  check("fxsave/fxrstor restores xmm3", back[0] == pattern[0] && back[1] == pattern[1] &&
                                            back[2] == pattern[2] && back[3] == pattern[3]);
}

void guest_main(uint32_t magic, const struct multiboot_info* mbi) {
  (void)magic;
  (void)mbi;
  uint32_t a, b, c, d;
  cpuid(1, &a, &b, &c, &d);
  check("CPUID: FPU", d & (1u << 0));
  check("CPUID: FXSR", d & (1u << 24));
  check("CPUID: SSE", d & (1u << 25));
  check("CPUID: SSE2", d & (1u << 26));
  write_cr0((read_cr0() | CR0_MP) & ~(CR0_EM | CR0_TS));
  check_x87();
  check_device_not_available();
  check_sse();
  guest_finish("fpu_sse");
}
