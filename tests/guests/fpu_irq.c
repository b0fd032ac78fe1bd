/* fpu_irq: x87 and SSE state across interrupts and the FPU's own
 * exceptions. A loop keeps all eight XMM registers and six x87 registers
 * live through 400 rounds of addps/mulpd/divps/mulps and fld/fmul/fstp
 * with exactly known results, and a PIT read (a device access) in each
 * round, while PIT interrupts (IRQ0, 1 kHz) arrive. First the interrupt
 * handler saves the state with fxsave, runs its own x87 and SSE work with
 * other values and other rounding modes (round toward zero, which would
 * change the loop's inexact divisions), checks it, and restores with
 * fxrstor, as an OS does; then the handler leaves the FPU alone, so only
 * the virtual machine keeps the state. Each time the loop runs until at
 * least 50 interrupts have landed inside it, and every pass must be
 * bit-exact.
 * Then: a lazy FPU switch between two "tasks" through #NM with CR0.TS (the
 * handler does clts, fxsave/fxrstor and restarts the instruction); an
 * unmasked x87 divide by zero reported as #MF (vector 16, CR0.NE=1) at the
 * next fwait, and a masked one on the x87 and in SSE. Values are checked
 * by their bits: the C code uses no floating point (-mgeneral-regs-only).
 *
 * Not tested: an unmasked SSE exception as #XM (vector 19). QEMU 7.2 TCG,
 * the oracle, never raises #XM: it sets the MXCSR flag and writes the
 * result as if the exception were masked, where the hardware faults and
 * leaves the destination alone. */
#include "tests/guests/lib/guest.h"
#include "tests/guests/lib/x86.h"

#define TIMER_HZ 1000
#define TICKS_IN_LOOP_WANTED 50
#define TICKS_LIMIT 2000  // give up (and fail) after this many interrupts
#define FCW_ROUND_TO_ZERO 0x0F7Fu
#define FCW_ZERO_DIVIDE_UNMASKED 0x037Bu
#define MXCSR_ROUND_TO_ZERO 0x7F80u
#define FSW_ZE 0x0004u
#define FSW_ES 0x0080u
#define MXCSR_ZE 0x0004u

/* What one pass of the loop leaves: xmm0-7, the six x87 registers (st0
 * first), the last c*c stored by fstp and the last (1/3)*3 on the x87. */
struct pass_result {
  uint32_t xmm[8][4];
  uint64_t x87[6];
  uint64_t c_squared;
  uint64_t third_times_three;
} __attribute__((aligned(16)));

/* The bits the pass must produce, worked out off-line (exact arithmetic;
 * the divisions round to nearest). */
static const struct pass_result pass_want = {
    .xmm =
        {
            {0x43490000, 0x42cc0000, 0x45483000, 0x45c82000},  // {1,2,3,4} + 400*step
            {0x3f000000, 0x3e800000, 0x41000000, 0x41800000},  // step {0.5,0.25,8,16}
            {0x00000000, 0x58f80000, 0x00000000, 0xa7020000},  // {1.5*2^400, -2.25*2^-400}
            {0x00000000, 0x40000000, 0x00000000, 0x3fe00000},  // {2, 0.5}
            {0x00000000, 0x0e080000, 0x00000000, 0xd9140000},  // {3*2^-800, -5*2^400}
            {0x00000000, 0x3fd00000, 0x00000000, 0x40000000},  // {0.25, 2}
            {0x3f800000, 0x40000000, 0x40a00000, 0x41200000},  // {1,2,5,10} after /3*3
            {0x40400000, 0x40400000, 0x40400000, 0x40400000},  // {3,3,3,3}
        },
    .x87 = {0x4000000000000000ull,       // 2
            0x591c000000000000ull,       // 7*2^400
            0xa722000000000000ull,       // -9*2^-400
            0x3fe0000000000000ull,       // 0.5
            0x40934a0000000000ull,       // 1234.5
            0x3f50624dd2f1a9fcull},      // 0.001
    .c_squared = 0x4137411640000000ull,  // 1234.5^2
    .third_times_three = 0x3ff0000000000000ull,
};

/* The pass: inputs in .data, result through the pointer argument. Each
   round also reads the PIT counter, so device accesses come between FP
   instructions with every register live. The labels around the pass let
   the handler tell an interrupt inside it. */
__asm__(
    ".data\n"
    ".align 16\n"
    "fp_in_xmm:\n"
    "  .float 1, 2, 3, 4\n"
    "  .float 0.5, 0.25, 8, 16\n"
    "  .double 1.5, -2.25\n"
    "  .double 2, 0.5\n"
    "  .double 3, -5\n"
    "  .double 0.25, 2\n"
    "  .float 1, 2, 5, 10\n"
    "  .float 3, 3, 3, 3\n"
    "fp_in_x87: .double 0.001, 1234.5, 0.5, -9, 7, 2\n"
    "fp_one: .double 1\n"
    "fp_three: .double 3\n"
    ".text\n"
    ".globl fp_pass\n"
    "fp_pass: mov 4(%esp), %edx\n"
    "  movaps fp_in_xmm, %xmm0; movaps fp_in_xmm+16, %xmm1\n"
    "  movapd fp_in_xmm+32, %xmm2; movapd fp_in_xmm+48, %xmm3\n"
    "  movapd fp_in_xmm+64, %xmm4; movapd fp_in_xmm+80, %xmm5\n"
    "  movaps fp_in_xmm+96, %xmm6; movaps fp_in_xmm+112, %xmm7\n"
    "  fldl fp_in_x87; fldl fp_in_x87+8; fldl fp_in_x87+16\n"
    "  fldl fp_in_x87+24; fldl fp_in_x87+32; fldl fp_in_x87+40\n"
    "  mov $400, %ecx\n"
    "1: addps %xmm1, %xmm0\n"
    "  mulpd %xmm3, %xmm2\n"
    "  mulpd %xmm5, %xmm4\n"
    "  divps %xmm7, %xmm6\n"
    "  mulps %xmm7, %xmm6\n"
    "  fmul %st, %st(1)\n"                               // a *= 2
    "  fld %st(3); fmul %st, %st(3); fstp %st(0)\n"      // b *= 0.5
    "  fld %st(4); fmul %st(0), %st; fstpl 176(%edx)\n"  // c*c
    "  fldl fp_one; fdivl fp_three; fmull fp_three; fstpl 184(%edx)\n"
    "  mov $0, %al; outb %al, $0x43; inb $0x40, %al; inb $0x40, %al\n"  // PIT latch
    "  dec %ecx\n"
    "  jnz 1b\n"
    "  movaps %xmm0, 0(%edx); movaps %xmm1, 16(%edx); movaps %xmm2, 32(%edx)\n"
    "  movaps %xmm3, 48(%edx); movaps %xmm4, 64(%edx); movaps %xmm5, 80(%edx)\n"
    "  movaps %xmm6, 96(%edx); movaps %xmm7, 112(%edx)\n"
    "  fstpl 128(%edx); fstpl 136(%edx); fstpl 144(%edx)\n"
    "  fstpl 152(%edx); fstpl 160(%edx); fstpl 168(%edx)\n"
    ".globl fp_pass_end\n"
    "fp_pass_end: ret\n");
void fp_pass(struct pass_result* out);
extern const char fp_pass_end[];

/* Four singles from xmm0 and a double from the x87, as routines below
   store them. */
struct xmm0_and_x87 {
  uint32_t xmm0[4];
  uint64_t x87;
} __attribute__((aligned(16)));

/* The handler's own FP work, in round-toward-zero: fills all eight x87
   registers and all XMM registers, so nothing of the loop survives by
   chance. Results: (1/3)*3 in singles and on the x87. */
__asm__(
    ".data\n"
    ".align 16\n"
    "irq_ones: .float 1, 1, 1, 1\n"
    "irq_threes: .float 3, 3, 3, 3\n"
    "irq_junk: .double -1e300, 7e-300\n"
    ".text\n"
    "handler_fp_work: mov 4(%esp), %eax\n"
    "  movaps irq_ones, %xmm0; movaps irq_threes, %xmm7\n"
    "  divps %xmm7, %xmm0; mulps %xmm7, %xmm0; movaps %xmm0, (%eax)\n"
    "  movapd irq_junk, %xmm1; mulpd %xmm1, %xmm1; movapd %xmm1, %xmm2\n"
    "  movapd %xmm1, %xmm3; movapd %xmm1, %xmm4; movapd %xmm1, %xmm5; movapd %xmm1, %xmm6\n"
    "  movapd %xmm1, %xmm7\n"
    "  fldl fp_one; fdivl fp_three; fmull fp_three; fstpl 16(%eax)\n"
    "  fldpi; fldl2e; fldl2t; fldlg2; fldln2; fldz; fld1; fldpi\n"
    "  fmul %st, %st(1)\n"
    "  ret\n");
void handler_fp_work(struct xmm0_and_x87* out);

static uint8_t irq_save_area[512] __attribute__((aligned(16)));
static volatile uint32_t ticks, ticks_in_loop, handler_wrong;
static bool handler_uses_fpu;

static void handle_timer(const struct int_frame* frame) {
  ++ticks;
  if (frame->eip >= (uint32_t)fp_pass && frame->eip <= (uint32_t)fp_pass_end) ++ticks_in_loop;
  if (!handler_uses_fpu) {
    pic_eoi(0);
    return;
  }
  static const uint16_t fcw = FCW_ROUND_TO_ZERO;
  static const uint32_t mxcsr = MXCSR_ROUND_TO_ZERO;
  static struct xmm0_and_x87 r;
  __asm__ volatile("fxsave %0; fninit; fldcw %1; ldmxcsr %2"
                   : "=m"(irq_save_area)
                   : "m"(fcw), "m"(mxcsr));
  handler_fp_work(&r);
  if (r.xmm0[0] != 0x3f7fffff || r.xmm0[3] != 0x3f7fffff || r.x87 != 0x3fefffffffffffffull) {
    ++handler_wrong;
  }
  __asm__ volatile("fxrstor %0" ::"m"(irq_save_area));
  pic_eoi(0);
}

/* Prints the words of a pass result that differ from pass_want. */
static void report_pass_difference(const struct pass_result* got) {
  const uint32_t* g = (const uint32_t*)got;
  const uint32_t* w = (const uint32_t*)&pass_want;
  for (uint32_t i = 0; i < sizeof(*got) / 4; ++i) {
    if (g[i] != w[i]) kprintf("  word %u: got %08x want %08x\n", i, g[i], w[i]);
  }
}

/* Runs passes with interrupts on until 50 ticks have landed inside one. */
static void check_loop_under_interrupts(bool handler_fpu) {
  kprintf(handler_fpu ? "FP loop under timer interrupts, the handler using the FPU\n"
                      : "FP loop under timer interrupts, the handler leaving the FPU alone\n");
  handler_uses_fpu = handler_fpu;
  ticks = ticks_in_loop = handler_wrong = 0;
  uint32_t wrong_passes = 0;
  static struct pass_result r, first_wrong;
  pic_unmask(0);
  sti();
  while (ticks_in_loop < TICKS_IN_LOOP_WANTED && ticks < TICKS_LIMIT) {
    fp_pass(&r);
    if (__builtin_memcmp(&r, &pass_want, sizeof(r)) != 0 && wrong_passes++ == 0) first_wrong = r;
  }
  cli();
  pic_mask(0);
  check("at least 50 interrupts landed inside the loop", ticks_in_loop >= TICKS_IN_LOOP_WANTED);
  if (!check_eq("passes with a wrong result", wrong_passes, 0)) {
    report_pass_difference(&first_wrong);
  }
  if (handler_fpu) check_eq("handler passes with a wrong result", handler_wrong, 0);
}

static void check_loop(void) {
  kprintf("FP loop\n");
  static struct pass_result r;
  fp_pass(&r);
  if (!check("one pass without interrupts is exact",
             __builtin_memcmp(&r, &pass_want, sizeof(r)) == 0)) {
    report_pass_difference(&r);
  }
  pic_init(0x20);
  pit_start_periodic(TIMER_HZ);
  check_loop_under_interrupts(true);
  check_loop_under_interrupts(false);
}

/* Lazy FPU switching: task A's state stays in the registers while task B
 * runs with CR0.TS set; B's first FP instruction raises #NM and the
 * handler saves A, loads B and restarts the instruction; back to A the
 * same way. */
__asm__(
    ".data\n"
    ".align 16\n"
    "task_a_xmm: .long 0xaaaa0001, 0xaaaa0002, 0xaaaa0003, 0xaaaa0004\n"
    "task_b_xmm: .long 0xbbbb0001, 0xbbbb0002, 0xbbbb0003, 0xbbbb0004\n"
    "task_a_x87: .double 6.25\n"
    "task_b_x87: .double -0.75\n"
    ".text\n"
    "task_a_load: movaps task_a_xmm, %xmm0; fninit; fldl task_a_x87; ret\n"
    /* task_b_run(out): out = {xmm0 after loading B's value, 1 + B's x87}. */
    "task_b_run: mov 4(%esp), %eax\n"
    "task_b_insn: fld1\n"
    "  faddl task_b_x87; fstpl 16(%eax); movaps task_b_xmm, %xmm0; movaps %xmm0, (%eax); ret\n"
    /* task_a_resume(out): out = {xmm0, st0} as task A left them. */
    "task_a_resume: mov 4(%esp), %eax\n"
    "task_a_insn: movaps %xmm0, (%eax)\n"
    "  fstpl 16(%eax); ret\n");
void task_a_load(void);
void task_b_run(struct xmm0_and_x87* out);
void task_a_resume(struct xmm0_and_x87* out);
extern const char task_b_insn[], task_a_insn[];

static uint8_t task_area[2][512] __attribute__((aligned(16)));
static uint32_t fpu_owner;  // 0 = task A, 1 = task B
static uint32_t nm_count, nm_eip[2];

static void handle_device_not_available(const struct int_frame* frame) {
  if (nm_count < 2) nm_eip[nm_count] = frame->eip;
  ++nm_count;
  __asm__ volatile("clts");
  __asm__ volatile("fxsave %0" : "=m"(task_area[fpu_owner]));
  fpu_owner ^= 1;
  __asm__ volatile("fxrstor %0" ::"m"(task_area[fpu_owner]));
}

static void check_lazy_switch(void) {
  kprintf("lazy FPU switch through #NM\n");
  __asm__ volatile("fninit; fxsave %0" : "=m"(task_area[1]));  // B starts from a clean FPU
  fpu_owner = 0;
  task_a_load();
  struct xmm0_and_x87 b, a;
  write_cr0(read_cr0() | CR0_TS);
  task_b_run(&b);
  check_eq("first #NM at task B's first FP instruction", nm_eip[0], (uint32_t)task_b_insn);
  check("CR0.TS clear after the handler", (read_cr0() & CR0_TS) == 0);
  check("task B computed 1 + -0.75", b.x87 == 0x3fd0000000000000ull);
  check("task B loaded its xmm0", b.xmm0[0] == 0xbbbb0001 && b.xmm0[3] == 0xbbbb0004);
  write_cr0(read_cr0() | CR0_TS);
  task_a_resume(&a);
  check_eq("second #NM at task A's first SSE instruction", nm_eip[1], (uint32_t)task_a_insn);
  check_eq("#NM count", nm_count, 2);
  check("task A's xmm0 survived task B", a.xmm0[0] == 0xaaaa0001 && a.xmm0[3] == 0xaaaa0004);
  check("task A's st0 survived task B", a.x87 == 0x4019000000000000ull);
}

/* Both load their control word (FCW, MXCSR) from fp_control. */
uint32_t fp_control;
__asm__(
    ".data\n"
    ".align 16\n"
    "sse_ones: .float 1, 1, 1, 1\n"
    "sse_zeros: .float 0, 0, 0, 0\n"
    "fp_zero: .double 0\n"
    ".text\n"
    /* x87_divide_by_zero(): 1/0; an unmasked exception waits for the next
       waiting instruction, the fwait. Leaves the quotient, if any, in st0. */
    "x87_divide_by_zero: fninit; fldcw fp_control\n"
    "  fld1; fdivl fp_zero\n"
    "x87_fwait_insn: fwait\n"
    "x87_fwait_next: ret\n"
    /* sse_divide_by_zero(): xmm0 = {1,1,1,1} / {0,0,0,0}. */
    "sse_divide_by_zero: ldmxcsr fp_control; movaps sse_ones, %xmm0; movaps sse_zeros, %xmm1\n"
    "  divps %xmm1, %xmm0\n"
    "sse_divps_next: ret\n");
void x87_divide_by_zero(void);
void sse_divide_by_zero(void);
extern const char x87_fwait_insn[], x87_fwait_next[], sse_divps_next[];

static void check_x87_exception(void) {
  kprintf("x87 divide by zero, masked\n");
  struct caught_trap t;
  uint16_t status = 0;
  uint64_t quotient = 0;
  fp_control = 0x037F;
  check("no exception", !trap_catch(x87_divide_by_zero, x87_fwait_next, &t));
  __asm__ volatile("fnstsw %0; fstpl %1" : "=m"(status), "=m"(quotient));
  check_eq("status word ZE, no ES", status & (FSW_ZE | FSW_ES), FSW_ZE);
  check("quotient is +inf", quotient == 0x7ff0000000000000ull);

  kprintf("x87 divide by zero, unmasked: #MF\n");
  fp_control = FCW_ZERO_DIVIDE_UNMASKED;
  check_trap("the fwait after the fdiv faults", x87_divide_by_zero, x87_fwait_insn, x87_fwait_next,
             16, &t);
  __asm__ volatile("fnstsw %0" : "=m"(status));
  check_eq("status word ZE and ES", status & (FSW_ZE | FSW_ES), FSW_ZE | FSW_ES);
  __asm__ volatile("fnclex; fnstsw %0" : "=m"(status));
  check_eq("fnclex clears them", status & (FSW_ZE | FSW_ES), 0);
  __asm__ volatile("fninit");
}

static void check_sse_divide_by_zero(void) {
  kprintf("SSE divide by zero, masked\n");
  struct caught_trap t;
  uint32_t mxcsr = 0;
  uint32_t quotient[4] __attribute__((aligned(16))) = {0};
  fp_control = 0x1F80;
  check("no exception", !trap_catch(sse_divide_by_zero, sse_divps_next, &t));
  __asm__ volatile("stmxcsr %0; movaps %%xmm0, %1" : "=m"(mxcsr), "=m"(quotient));
  check_eq("MXCSR ZE", mxcsr & MXCSR_ZE, MXCSR_ZE);
  check("quotient is +inf", quotient[0] == 0x7f800000 && quotient[3] == 0x7f800000);
}

bool guest_trap(struct int_frame* frame) {
  if (frame->vector == 0x20) {
    handle_timer(frame);
    return true;
  }
  if (frame->vector == 7) {
    handle_device_not_available(frame);
    return true;
  }
  return false;
}

void guest_main(uint32_t magic, const struct multiboot_info* mbi) {
  (void)magic;
  (void)mbi;
  write_cr0((read_cr0() | CR0_MP | CR0_NE) & ~(CR0_EM | CR0_TS));
  write_cr4(read_cr4() | CR4_OSFXSR | CR4_OSXMMEXCPT);
  __asm__ volatile("fninit");
  check_loop();
  check_lazy_switch();
  check_x87_exception();
  check_sse_divide_by_zero();
  guest_finish("fpu_irq");
}
