/* based_code: code segments with a non-zero base, entered from the flat
 * ring-0 code by far call and far jmp. A binary translator must fetch at
 * CS base + EIP while every EIP the guest sees (pushed by call, by an
 * exception, read back by the guest) stays the offset, and must key its
 * translations on the linear address, not on EIP alone.
 *
 * Checks, all at CPL 0 in 32-bit code segments (4 GiB limit):
 *   - a blob of code copied into a buffer and run with CS based 0x1000
 *     below it: arithmetic with push/pop on the flat stack, mov from CS, a
 *     near call (the pushed return address is the offset of the next
 *     instruction), jmp rel8/rel32, jcc taken and not taken, loop, call
 *     *%eax, jmp through a CS-overridden and a flat memory slot, ret $8,
 *     lret back to the flat CS, entry and exit by far jmp, a far call from
 *     one based segment into another and lret back;
 *   - reads of data inside the blob with a %cs: override (moffs and
 *     base+displacement forms);
 *   - two segments with different bases holding different code at the same
 *     offsets, called alternately 100 times;
 *   - the base of one selector's descriptor changed in the GDT between far
 *     calls (100 times), and rewritten by code running under that very
 *     selector: the running code keeps its cached base until CS is
 *     reloaded;
 *   - #UD (ud2) and int $0x80 in the based code: the flat handler sees the
 *     based selector and the offset as the pushed CS:EIP, and iret resumes
 *     the based code;
 *   - self-modifying code: an immediate of the based routine patched
 *     through the flat data segment between calls (100 rounds);
 *   - #PF on instruction fetch under a based CS (paging on): a jump into a
 *     not-present page, an instruction crossing into it, and a far call
 *     straight into it; CR2 is the linear address (base + offset), the
 *     pushed EIP the offset of the faulting instruction; the handler maps
 *     the page and the fetch restarts.
 *
 * Not tested: CS limits. QEMU 7.2 TCG (the oracle) does not check them on
 * instruction fetch or near branches: with a byte-granular limit of 0x1f
 * it runs straight past the limit, also into an instruction straddling it,
 * and near jmp, call, jcc, jmp *reg and ret to targets past the limit go
 * through without #GP(0). Only a far call to an offset past the limit
 * faults there (#GP with the selector as error code). */
#include "tests/guests/lib/guest.h"
#include "tests/guests/lib/paging.h"
#include "tests/guests/lib/x86.h"

#define SEL_A 0x30        // GDT entry 6
#define SEL_B 0x38        // GDT entry 7
#define A_ORG 0x1000      // the CS offset of blob A's first byte
#define P_ORG 0x3000      // the CS offset of the page-fault blob's first byte
#define CODE_ACCESS 0x9A  // present, DPL 0, execute/read code
#define CODE_FLAGS 0xC    // 32-bit, 4 KiB granularity
#define ROUNDS 100

/* The CS offset of a label of blob A, in assembly. */
#define AOFF(label) "(" #label " - based_a + 0x1000)"

/* Blob A: a template, copied into a_code and run from there with CS based
 * at a_code - A_ORG. Relative branches need no fixing up; absolute
 * references are written as offsets from based_a plus A_ORG. Every
 * routine is entered by a far call (argument in EAX, result in EAX, ECX
 * and EDX clobbered) and ends with lret, except a_far_jmp. */
__asm__(
    ".section .text.based_a,\"ax\",@progbits\n"
    ".balign 4096\n"
    "based_a:\n"
    /* ((3a + 7) * 5 ^ 0x5a5a) << 3, through EBX saved on the stack. */
    "a_arith:\n"
    "  push %ebx\n"
    "  lea 7(%eax,%eax,2), %ebx\n"
    "  imul $5, %ebx, %eax\n"
    "  xor $0x5a5a, %eax\n"
    "  shl $3, %eax\n"
    "  pop %ebx\n"
    "  lret\n"
    "a_read_cs:\n"
    "  xor %eax, %eax\n"
    "  mov %cs, %ax\n"
    "  lret\n"
    /* Returns the return address the near call pushed. */
    "a_call:\n"
    "  call a_call_sub\n"
    "a_call_next:\n"
    "  mov %edx, %eax\n"
    "  lret\n"
    "a_call_sub:\n"
    "  mov (%esp), %edx\n"
    "  ret\n"
    /* Bits 0-3 for the paths that must run, 28-31 for those that must
     * not; 1 + 2 + ... + 10 from loop in bits 8-15. */
    "a_jumps:\n"
    "  xor %eax, %eax\n"
    "  jmp 1f\n"
    "  or $0x80000000, %eax\n"
    "1:\n"
    "  or $1, %eax\n"
    "  {disp32} jmp 2f\n"
    "  or $0x40000000, %eax\n"
    "2:\n"
    "  or $2, %eax\n"
    "  cmp $3, %eax\n"
    "  je 3f\n"
    "  or $0x20000000, %eax\n"
    "3:\n"
    "  cmp $0, %eax\n"
    "  je 4f\n"
    "  or $4, %eax\n"
    "4:\n"
    "  {disp32} jne 5f\n"
    "  or $0x10000000, %eax\n"
    "5:\n"
    "  or $8, %eax\n"
    "  mov $10, %ecx\n"
    "  xor %edx, %edx\n"
    "6:\n"
    "  add %ecx, %edx\n"
    "  loop 6b\n"
    "  shl $8, %edx\n"
    "  or %edx, %eax\n"
    "  lret\n"
    /* call *%eax, then jmp through a slot read with a CS override, then
     * through a slot in the flat data segment; returns what the call
     * pushed, or bits 30-31 if a jmp fell through. */
    "a_indirect:\n"
    "  xor %edx, %edx\n"
    "  mov $" AOFF(a_ind_sub) ", %eax\n"
    "  call *%eax\n"
    "a_ind_next:\n"
    "  jmp *%cs:" AOFF(a_cs_slot) "\n"
    "  or $0x80000000, %edx\n"
    "a_ind_cs_target:\n"
    "  jmp *a_flat_slot\n"
    "  or $0x40000000, %edx\n"
    "a_ind_ds_target:\n"
    "  mov %edx, %eax\n"
    "  lret\n"
    "a_ind_sub:\n"
    "  mov (%esp), %edx\n"
    "  ret\n"
    "a_cs_slot: .long " AOFF(a_ind_cs_target) "\n"
    /* Two arguments removed by ret $8: their sum, and ESP's change in
     * bits 16-31 (none). */
    "a_ret_imm:\n"
    "  mov %esp, %ecx\n"
    "  push $0x1111\n"
    "  push $0x2222\n"
    "  call a_ret_imm_sub\n"
    "  sub %esp, %ecx\n"
    "  shl $16, %ecx\n"
    "  or %ecx, %eax\n"
    "  lret\n"
    "a_ret_imm_sub:\n"
    "  mov 4(%esp), %eax\n"
    "  add 8(%esp), %eax\n"
    "  ret $8\n"
    /* Entered by far_jmp_test's ljmp, leaves by another. */
    "a_far_jmp:\n"
    "  mov $0xf00d, %eax\n"
    "  ljmp $0x08, $far_jmp_back\n"
    /* SEL_B:0x10, then lret back here (CS = SEL_A again). */
    "a_far_call_b:\n"
    "  lcall $0x38, $0x10\n"
    "  add $0x10000, %eax\n"
    "  lret\n"
    "a_cs_moffs:\n"
    "  mov %cs:" AOFF(a_data) ", %eax\n"
    "  lret\n"
    "a_cs_indexed:\n"
    "  mov $" AOFF(a_data) ", %ecx\n"
    "  mov %cs:4(%ecx), %eax\n"
    "  lret\n"
    "a_data: .long 0xc0de0a1a, 0xc0de0a1b\n"
    "a_exceptions:\n"
    "  mov $1, %eax\n"
    "a_ud2:\n"
    "  ud2\n"
    "  add $2, %eax\n"
    "  int $0x80\n"
    "a_after_int:\n"
    "  add $4, %eax\n"
    "  lret\n"
    "a_smc:\n"
    "  mov $0xbad, %eax\n"
    "  lret\n"
    "based_a_end:\n"
    ".data\n"
    "a_flat_slot: .long " AOFF(a_ind_ds_target) "\n"
    ".text\n"
    "far_jmp_test:\n"
    "  ljmp $0x30, $" AOFF(a_far_jmp) "\n"
    "far_jmp_back:\n"
    "  ret\n");
extern const char based_a[], based_a_end[], a_arith[], a_read_cs[], a_call[], a_call_next[],
    a_jumps[], a_indirect[], a_ind_next[], a_ret_imm[], a_far_call_b[], a_cs_moffs[],
    a_cs_indexed[], a_exceptions[], a_ud2[], a_after_int[], a_smc[];
uint32_t far_jmp_test(void);
#define A_OFF(label) ((uint32_t)(label) - (uint32_t)based_a + A_ORG)

/* Blobs B1 and B2, run in place with CS based at their first byte: the
 * same offsets, different code. At 0x10 a routine returning 0x1111 or
 * 0x2222 (of different lengths). At 0x20 (the same in both): EAX = a GDT
 * entry, ECX:EDX = a descriptor; stores it, then near-calls 0x40, which
 * returns 0x1b1b or 0x2b2b. Fill bytes are int3. */
#define B_REWRITE_ROUTINE \
  "  .org 0x20, 0xcc\n"   \
  "  mov %ecx, (%eax)\n"  \
  "  mov %edx, 4(%eax)\n" \
  "  call 1f\n"           \
  "  lret\n"              \
  "  .org 0x40, 0xcc\n"   \
  "1:\n"
__asm__(
    ".section .text.based_b1,\"ax\",@progbits\n"
    ".balign 4096\n"
    "based_b1:\n"
    "  .org 0x10, 0xcc\n"
    "  mov $0x1111, %eax\n"
    "  lret\n" B_REWRITE_ROUTINE
    "  mov $0x1b1b, %eax\n"
    "  ret\n"
    "  .balign 64, 0xcc\n"
    ".section .text.based_b2,\"ax\",@progbits\n"
    ".balign 4096\n"
    "based_b2:\n"
    "  .org 0x10, 0xcc\n"
    "  xor %eax, %eax\n"
    "  or $0x2222, %eax\n"
    "  lret\n" B_REWRITE_ROUTINE
    "  mov $0x2b2b, %eax\n"
    "  ret\n"
    "  .balign 64, 0xcc\n"
    ".text\n");
extern const char based_b1[], based_b2[];
#define B_ROUTINE 0x10
#define B_REWRITE 0x20

/* The page-fault blob: two pages, run in place with CS based P_ORG below
 * it; the test unmaps the second page. p_jump jumps to p_target, 16 bytes
 * into the second page; p_cross falls through nops into an add whose first
 * three bytes are in the first page and its last two in the second. */
__asm__(
    ".section .text.based_pf,\"ax\",@progbits\n"
    ".balign 4096\n"
    "based_pf:\n"
    "p_jump:\n"
    "  mov $0x100, %eax\n"
    "  jmp p_target\n"
    "p_cross:\n"
    "  mov $0x200, %eax\n"
    "  .org 4093, 0x90\n"
    "p_cross_insn:\n"
    "  add $0x12345678, %eax\n"
    "  lret\n"
    "  .org 4096 + 0x10, 0xcc\n"
    "p_target:\n"
    "  add $1, %eax\n"
    "  lret\n"
    "  .balign 4096, 0xcc\n"
    ".text\n");
extern const char based_pf[], p_jump[], p_cross[], p_cross_insn[], p_target[];
#define P_OFF(label) ((uint32_t)(label) - (uint32_t)based_pf + P_ORG)
#define P_SECOND_PAGE ((uint32_t)based_pf + PAGE_SIZE)

static uint8_t a_code[4096] __attribute__((aligned(4096)));

struct far_pointer {
  uint32_t offset;
  uint16_t selector;
} __attribute__((packed));

static uint32_t far_call(uint16_t selector, uint32_t offset, uint32_t arg) {
  struct far_pointer target = {offset, selector};
  uint32_t eax = arg;
  __asm__ volatile("lcall *%1" : "+a"(eax) : "m"(target) : "ecx", "edx", "memory", "cc");
  return eax;
}

static uint16_t read_cs(void) {
  uint16_t cs;
  __asm__ volatile("mov %%cs, %0" : "=r"(cs));
  return cs;
}

static uint64_t code_descriptor(uint32_t base) {
  const uint32_t limit = 0xFFFFF;
  return (uint64_t)(limit & 0xFFFF) | (uint64_t)(base & 0xFFFFFF) << 16 |
         (uint64_t)CODE_ACCESS << 40 | (uint64_t)((limit >> 16) & 0xF) << 48 |
         (uint64_t)CODE_FLAGS << 52 | (uint64_t)(base >> 24) << 56;
}

static void set_code_segment(uint32_t index, uint32_t base) {
  gdt_set_segment(index, base, 0xFFFFF, CODE_ACCESS, CODE_FLAGS);
}

/* Far-calls B_REWRITE under SEL_A, which stores desc into GDT entry 6
 * (SEL_A's own) and then near-calls offset 0x40. */
static uint32_t rewrite_running_cs(uint64_t desc) {
  struct {
    uint16_t limit;
    uint32_t base;
  } __attribute__((packed)) gdtr;
  __asm__ volatile("sgdt %0" : "=m"(gdtr));
  uint32_t eax = gdtr.base + 6 * 8;
  __asm__ volatile("lcall $0x30, $0x20"
                   : "+a"(eax)
                   : "c"((uint32_t)desc), "d"((uint32_t)(desc >> 32))
                   : "memory", "cc");
  return eax;
}

/* What the flat handler saw of the traps raised in based code. */
struct seen_trap {
  uint32_t count, cs, eip, error, cr2;
};
static struct seen_trap seen_ud, seen_int, seen_pf;

static void record(struct seen_trap* seen, const struct int_frame* frame) {
  ++seen->count;
  seen->cs = frame->cs & 0xFFFF;
  seen->eip = frame->eip;
  seen->error = frame->error;
  seen->cr2 = read_cr2();
}

static void set_second_page_present(bool present) {
  *paging_pte(P_SECOND_PAGE) = present ? P_SECOND_PAGE | PTE_P | PTE_W : 0;
  invlpg(P_SECOND_PAGE);
}

bool guest_trap(struct int_frame* frame) {
  const uint32_t cs = frame->cs & 0xFFFF;
  if (frame->vector == 6 && cs == SEL_A) {
    record(&seen_ud, frame);
    frame->eip += 2;  // past ud2
    return true;
  }
  if (frame->vector == 0x80 && cs == SEL_A) {
    record(&seen_int, frame);
    frame->eax += 0x100;
    return true;
  }
  if (frame->vector == 14 && cs == SEL_B && read_cr2() - P_SECOND_PAGE < PAGE_SIZE) {
    record(&seen_pf, frame);
    set_second_page_present(true);  // the fetch restarts and succeeds
    return true;
  }
  return false;
}

static void set_immediate(uint32_t v) {
  volatile uint8_t* p = a_code + (a_smc - based_a) + 1;  // mov $imm32, %eax: imm at byte 1
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

static void check_fetch_fault(const char* what, uint32_t entry, uint32_t arg, uint32_t want,
                              uint32_t eip, uint32_t cr2) {
  kprintf("%s\n", what);
  seen_pf = (struct seen_trap){0};
  set_second_page_present(false);
  check_eq("result after the page is mapped", far_call(SEL_B, entry, arg), want);
  check_eq("one #PF", seen_pf.count, 1);
  check_eq("error code (not present, read)", seen_pf.error, 0);
  check_eq("pushed cs", seen_pf.cs, SEL_B);
  check_eq("pushed eip is the offset", seen_pf.eip, eip);
  check_eq("cr2 is the linear address", seen_pf.cr2, cr2);
}

void guest_main(uint32_t magic, const struct multiboot_info* mbi) {
  (void)magic;
  (void)mbi;
  for (uint32_t i = 0; i < sizeof(a_code); ++i) a_code[i] = 0xcc;
  for (uint32_t i = 0; i < (uint32_t)(based_a_end - based_a); ++i) a_code[i] = based_a[i];
  set_code_segment(6, (uint32_t)a_code - A_ORG);
  set_code_segment(7, (uint32_t)based_b2);

  kprintf("code copied into a buffer, CS based 0x1000 below it\n");
  check_eq("mov from cs", far_call(SEL_A, A_OFF(a_read_cs), 0), SEL_A);
  const uint32_t a = 0x1234;
  check_eq("arithmetic, push and pop", far_call(SEL_A, A_OFF(a_arith), a),
           ((3 * a + 7) * 5 ^ 0x5a5a) << 3);
  check_eq("lret came back to the flat cs", read_cs(), SEL_KERNEL_CODE);
  check_eq("near call pushes the offset of the next instruction", far_call(SEL_A, A_OFF(a_call), 0),
           A_OFF(a_call_next));
  check_eq("jmp rel8/rel32, jcc taken and not taken, loop", far_call(SEL_A, A_OFF(a_jumps), 0),
           0x370f);
  check_eq("call *%eax, jmp through cs: and flat memory slots",
           far_call(SEL_A, A_OFF(a_indirect), 0), A_OFF(a_ind_next));
  check_eq("ret $8: the sum of the arguments, esp restored", far_call(SEL_A, A_OFF(a_ret_imm), 0),
           0x3333);
  check_eq("entered and left by far jmp", far_jmp_test(), 0xf00d);
  check_eq("far call into another based segment and lret back",
           far_call(SEL_A, A_OFF(a_far_call_b), 0), 0x12222);

  kprintf("reads with a cs override\n");
  check_eq("moffs", far_call(SEL_A, A_OFF(a_cs_moffs), 0), 0xc0de0a1a);
  check_eq("base register and displacement", far_call(SEL_A, A_OFF(a_cs_indexed), 0), 0xc0de0a1b);

  kprintf("two segments, different code at the same offsets\n");
  set_code_segment(6, (uint32_t)based_b1);
  set_code_segment(7, (uint32_t)based_b2);
  check_eq("first segment", far_call(SEL_A, B_ROUTINE, 0), 0x1111);
  check_eq("second segment", far_call(SEL_B, B_ROUTINE, 0), 0x2222);
  uint32_t wrong = 0;
  for (uint32_t i = 0; i < ROUNDS; ++i) {
    wrong += far_call(SEL_A, B_ROUTINE, 0) != 0x1111;
    wrong += far_call(SEL_B, B_ROUTINE, 0) != 0x2222;
  }
  check_eq("100 alternating rounds, wrong results", wrong, 0);

  kprintf("a new base for the same selector\n");
  set_code_segment(6, (uint32_t)based_b2);
  check_eq("after the GDT write the far call runs the new base's code",
           far_call(SEL_A, B_ROUTINE, 0), 0x2222);
  set_code_segment(6, (uint32_t)based_b1);
  check_eq("and back", far_call(SEL_A, B_ROUTINE, 0), 0x1111);
  wrong = 0;
  for (uint32_t i = 0; i < ROUNDS; ++i) {
    set_code_segment(6, (uint32_t)((i & 1) ? based_b1 : based_b2));
    wrong += far_call(SEL_A, B_ROUTINE, 0) != ((i & 1) ? 0x1111u : 0x2222u);
  }
  check_eq("100 base changes, wrong results", wrong, 0);
  set_code_segment(6, (uint32_t)based_b1);
  check_eq("code that rewrites its own descriptor keeps its cached base",
           rewrite_running_cs(code_descriptor((uint32_t)based_b2)), 0x1b1b);
  check_eq("the next far call uses the new base", far_call(SEL_A, B_ROUTINE, 0), 0x2222);

  kprintf("exceptions in based code\n");
  set_code_segment(6, (uint32_t)a_code - A_ORG);
  check_eq("resumed after #UD and int $0x80", far_call(SEL_A, A_OFF(a_exceptions), 0), 0x107);
  check_eq("one #UD", seen_ud.count, 1);
  check_eq("#UD pushed cs", seen_ud.cs, SEL_A);
  check_eq("#UD pushed eip is the offset of ud2", seen_ud.eip, A_OFF(a_ud2));
  check_eq("one int $0x80", seen_int.count, 1);
  check_eq("int $0x80 pushed cs", seen_int.cs, SEL_A);
  check_eq("int $0x80 pushed eip is the offset after it", seen_int.eip, A_OFF(a_after_int));

  kprintf("self-modifying code through the flat data segment\n");
  set_immediate(0x5111);
  check_eq("first version", far_call(SEL_A, A_OFF(a_smc), 0), 0x5111);
  set_immediate(0x5222);
  check_eq("patched once", far_call(SEL_A, A_OFF(a_smc), 0), 0x5222);
  wrong = 0;
  for (uint32_t i = 0; i < ROUNDS; ++i) {
    set_immediate(0x6000 + i);
    wrong += far_call(SEL_A, A_OFF(a_smc), 0) != 0x6000 + i;
  }
  check_eq("100 patch-and-call rounds, wrong results", wrong, 0);

  kprintf("page faults on instruction fetch\n");
  paging_identity_4k(0, 0x400000, PTE_P | PTE_W);
  paging_enable();
  set_code_segment(7, (uint32_t)based_pf - P_ORG);
  check_eq("the blob runs with both pages present", far_call(SEL_B, P_OFF(p_jump), 0), 0x101);
  check_fetch_fault("jmp into a not-present page", P_OFF(p_jump), 0, 0x101, P_OFF(p_target),
                    (uint32_t)p_target);
  check_fetch_fault("an instruction crossing into a not-present page", P_OFF(p_cross), 0,
                    0x12345878, P_OFF(p_cross_insn), P_SECOND_PAGE);
  check_fetch_fault("far call into a not-present page", P_OFF(p_target), 0x300, 0x301,
                    P_OFF(p_target), (uint32_t)p_target);
  guest_finish("based_code");
}
