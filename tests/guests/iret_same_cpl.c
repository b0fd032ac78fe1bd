/* iret_same_cpl: iretd at CPL 0 back to CPL 0, the return that pops only
 * EIP, CS and EFLAGS. Every iret here returns through a frame the guest
 * builds itself (mostly push an EFLAGS image, push %cs, push the target,
 * iret: the pattern kernels use to serialize or to leave a handler early).
 * Checks:
 *   - 1000 irets to the next instruction in a loop: the count, ESP back to
 *     its value, EAX, EBX, EDX, ESI, EDI and EBP preserved (ECX counts);
 *   - the EFLAGS image, read back by pushf at the target: CF PF AF ZF SF OF
 *     and DF all set, all clear and mixed (each from the opposite state),
 *     IOPL 3 and back to 0, AC and ID set and cleared, everything at once;
 *     reserved bits set in the image read back clear and bit 1 reads back
 *     set; the caller's DF, IOPL, AC and ID (clear) afterwards;
 *   - IF through the image with a PIT tick pending at the PIC: an image
 *     with IF set takes the interrupt at the iret's target, before the
 *     target's first instruction (saved EIP = the target); an image with IF
 *     clear takes none until a later sti (then at the hlt after it), also
 *     when the iret runs in the interrupt shadow of an sti;
 *   - TF through the image: the single-step #DB comes after the target's
 *     first instruction; TF set before an iret whose image clears it: the
 *     #DB comes after the iret, at its target;
 *   - the CS descriptor is read from the GDT again, although the selector
 *     is the one already in CS: the guest runs on a second flat code
 *     selector (0x30), rewrites its GDT entry without reloading CS and
 *     irets to 0x30: an identical descriptor works, a new base is used at
 *     once, a not-present descriptor raises #NP(0x30) and a DPL 3 one
 *     #GP(0x30), at the iret with nothing popped;
 *   - a return frame in a not-present page (paging on): EFLAGS, CS and
 *     EFLAGS, or the whole frame unreadable raise #PF at the iret, CR2 the
 *     first byte of the page, ESP as before the iret; once the page is
 *     mapped the same iret goes through.
 * Interrupts are enabled only where a check needs them; the timer handler
 * returns with IF clear, so each check sees exactly one interrupt however
 * fast the PIT runs against the guest.
 * Not tested: a target past the CS limit (#GP(0) on hardware; QEMU 7.2 TCG,
 * the oracle, checks neither the iret's target nor fetches against the
 * limit), NT set (a nested task return) and iretw (a 16-bit IP cannot reach
 * a guest loaded at 1 MiB). */
#include "tests/guests/lib/guest.h"
#include "tests/guests/lib/paging.h"
#include "tests/guests/lib/x86.h"

#define STR(x) #x
#define XSTR(x) STR(x)

#define LOOP_IRETS 1000
#define TIMER_HZ 1000
#define PENDING_WRAPS 3    // PIT periods waited with IF=0 so that a tick is pending
#define SEL_ALT_CODE 0x30  // GDT entry 6: a second flat ring-0 code selector
#define CODE_ACCESS 0x9A   // present, DPL 0, execute/read
#define CODE_FLAGS 0xC     // 32-bit, 4 KiB granularity

#define EFLAGS_CF (1u << 0)
#define EFLAGS_FIXED (1u << 1)  // reads as 1 whatever is written
#define EFLAGS_PF (1u << 2)
#define EFLAGS_AF (1u << 4)
#define EFLAGS_ZF (1u << 6)
#define EFLAGS_SF (1u << 7)
#define EFLAGS_TF (1u << 8)
#define EFLAGS_DF (1u << 10)
#define EFLAGS_OF (1u << 11)
#define EFLAGS_IOPL3 (3u << 12)
#define EFLAGS_AC (1u << 18)
#define EFLAGS_ID (1u << 21)
#define EFLAGS_ARITH \
  (EFLAGS_CF | EFLAGS_PF | EFLAGS_AF | EFLAGS_ZF | EFLAGS_SF | EFLAGS_OF | EFLAGS_DF)
/* What the caller's code relies on, all clear since boot. */
#define EFLAGS_CONTROL (EFLAGS_TF | EFLAGS_IF | EFLAGS_DF | EFLAGS_IOPL3 | EFLAGS_AC | EFLAGS_ID)
/* Bits 3, 5, 15 and 22-31: reserved, always read as 0. */
#define EFLAGS_RESERVED 0xFFC08028u

/* --- 1000 irets to self --- */

/* What iret_loop saw after the loop; written by the asm below. */
struct loop_view {
  uint32_t esp_before, esp_after, eax, ebx, ecx, edx, esi, edi, ebp;
};
struct loop_view loop_seen;
volatile uint32_t loop_irets;

__asm__(
    ".text\n"
    "iret_loop:\n"
    "  push %ebp; push %ebx; push %esi; push %edi\n"
    "  mov %esp, loop_seen\n"
    "  mov $0x11111111, %eax; mov $0x22222222, %ebx; mov $0x33333333, %edx\n"
    "  mov $0x44444444, %esi; mov $0x55555555, %edi; mov $0x66666666, %ebp\n"
    "  mov $" XSTR(LOOP_IRETS) ", %ecx\n"
    "1:\n"
    "  pushfl; push %cs; push $2f\n"
    "  iret\n"
    "2:\n"
    "  incl loop_irets\n"
    "  dec %ecx\n"
    "  jnz 1b\n"
    "  mov %esp, loop_seen+4\n"
    "  mov %eax, loop_seen+8; mov %ebx, loop_seen+12; mov %ecx, loop_seen+16\n"
    "  mov %edx, loop_seen+20; mov %esi, loop_seen+24; mov %edi, loop_seen+28\n"
    "  mov %ebp, loop_seen+32\n"
    "  pop %edi; pop %esi; pop %ebx; pop %ebp\n"
    "  ret\n");
void iret_loop(void);

/* --- the EFLAGS image --- */

/* Loads EFLAGS = before, irets with image and returns what pushf reads at
 * the target; the caller's EFLAGS are restored afterwards. */
static uint32_t iret_flags(uint32_t before, uint32_t image) {
  uint32_t seen;
  __asm__ volatile(
      "pushfl\n\t"
      "push %1\n\t"
      "popfl\n\t"
      "push %2\n\t"
      "push %%cs\n\t"
      "push $1f\n\t"
      "iret\n"
      "1:\n\t"
      "pushfl\n\t"
      "pop %0\n\t"
      "popfl"
      : "=&r"(seen)
      : "r"(before), "r"(image)
      : "cc", "memory");
  return seen;
}

static void check_flags(const char* what, uint32_t before, uint32_t image) {
  check_eq(what, iret_flags(before | EFLAGS_FIXED, image),
           (image | EFLAGS_FIXED) & ~EFLAGS_RESERVED);
}

/* --- IF and TF through the image --- */

volatile uint32_t irq_count, if_target_runs, tf_target_runs;
static volatile uint32_t irq_eip, irq_eflags, irq_target_runs;
static volatile uint32_t db_count, db_eip, db_eflags, db_target_runs;

__asm__(
    ".text\n"
    /* A tick is pending and IF clear: iret with IF set in the image. */
    "iret_if_set:\n"
    "  pushfl; orl $0x200, (%esp); push %cs; push $if_target\n"
    "  iret\n"
    "if_target:\n"
    "  incl if_target_runs\n"
    "  ret\n"
    /* The image keeps IF clear; returns irq_count as the target sees it,
     * then takes the pending tick with sti; hlt. */
    "iret_if_clear:\n"
    "  pushfl; andl $~0x200, (%esp); push %cs; push $1f\n"
    "  iret\n"
    "1:\n"
    "  mov irq_count, %eax\n"
    "  sti\n"
    "  hlt\n"
    "if_clear_after_hlt:\n"
    "  ret\n"
    /* The same with IF set by an sti just before the iret: the iret runs in
     * the sti's interrupt shadow and clears IF again. */
    "iret_if_clear_after_sti:\n"
    "  pushfl; andl $~0x200, (%esp); push %cs; push $1f\n"
    "  sti\n"
    "  iret\n"
    "1:\n"
    "  mov irq_count, %eax\n"
    "  sti\n"
    "  hlt\n"
    "if_shadow_after_hlt:\n"
    "  ret\n"
    /* TF set in the image: the #DB comes after the target's first
     * instruction. */
    "iret_tf_image:\n"
    "  pushfl; orl $0x100, (%esp); push %cs; push $tf_target\n"
    "  iret\n"
    "tf_target:\n"
    "  incl tf_target_runs\n"
    "tf_after_first:\n"
    "  ret\n"
    /* TF set by popf before an iret whose image has it clear: the iret
     * itself is single-stepped, the #DB comes at its target. */
    "iret_tf_before:\n"
    "  pushfl; push %cs; push $tf_before_target\n"
    "  pushfl; orl $0x100, (%esp); popfl\n"
    "  iret\n"
    "tf_before_target:\n"
    "  incl tf_target_runs\n"
    "  ret\n");
void iret_if_set(void);
uint32_t iret_if_clear(void);
uint32_t iret_if_clear_after_sti(void);
void iret_tf_image(void);
void iret_tf_before(void);
extern const char if_target[], if_clear_after_hlt[], if_shadow_after_hlt[];
extern const char tf_target[], tf_after_first[], tf_before_target[];

/* --- the CS descriptor read again --- */

volatile uint32_t alt_iret_esp;
volatile uint16_t alt_target_cs;

/* iret_same_selector(offset): irets to %cs:offset (CS is SEL_ALT_CODE) and
 * returns the tag of the target reached: 0xa or 0xb. The targets leave
 * through a far jmp to the flat CS; a faulting iret resumes (the handler
 * sets the flat CS) at alt_fault_resume and returns 0xfa17. */
__asm__(
    ".text\n"
    "to_alt_cs:\n"
    "  ljmp $0x30, $1f\n"
    "1:\n"
    "  ret\n"
    "iret_same_selector:\n"
    "  mov 4(%esp), %ecx\n"
    "  pushfl; push %cs; push %ecx\n"
    "  mov %esp, alt_iret_esp\n"
    "alt_iret_insn:\n"
    "  iret\n"
    "alt_fault_resume:\n"
    "  add $12, %esp\n"
    "  mov $0xfa17, %eax\n"
    "alt_back:\n"
    "  ret\n"
    "alt_target_a:\n"
    "  movw %cs, alt_target_cs\n"
    "  mov $0xa, %eax\n"
    "  ljmp $0x08, $alt_back\n"
    "alt_target_b:\n"
    "  movw %cs, alt_target_cs\n"
    "  mov $0xb, %eax\n"
    "  ljmp $0x08, $alt_back\n");
void to_alt_cs(void);
uint32_t iret_same_selector(uint32_t offset);
extern const char alt_iret_insn[], alt_fault_resume[], alt_target_a[], alt_target_b[];

/* --- a return frame in a not-present page --- */

static uint8_t fault_stack[2 * PAGE_SIZE] __attribute__((aligned(4096)));
#define FAULT_STACK_TOP ((uint32_t)fault_stack + PAGE_SIZE)  // first byte of the unmapped page

uint32_t pf_frame_esp, pf_saved_esp;
volatile uint32_t pf_target_runs;

/* Switches to ESP = pf_frame_esp, where the frame is (or would be), and
 * irets; both a fault (resumed at pf_resume) and a successful return come
 * back through pf_resume to the caller's stack. */
__asm__(
    ".text\n"
    "iret_on_frame:\n"
    "  mov %esp, pf_saved_esp\n"
    "  mov pf_frame_esp, %esp\n"
    "pf_iret_insn:\n"
    "  iret\n"
    "pf_iret_target:\n"
    "  incl pf_target_runs\n"
    "pf_resume:\n"
    "  mov pf_saved_esp, %esp\n"
    "  ret\n");
void iret_on_frame(void);
extern const char pf_iret_insn[], pf_iret_target[], pf_resume[];

/* The fault a check expects, caught by guest_trap while armed and resumed
 * at resume on the flat CS (the faulting CS may be the broken one, which
 * trap_catch would return to). */
struct expected_fault {
  bool armed;
  const char* resume;
  uint32_t count, vector, error, eip, cs, esp, cr2;
};
static struct expected_fault fault;

static void arm_fault(const char* resume) {
  fault = (struct expected_fault){.armed = true, .resume = resume};
}

bool guest_trap(struct int_frame* frame) {
  if (frame->vector == 0x20) {
    ++irq_count;
    irq_eip = frame->eip;
    irq_eflags = frame->eflags;
    irq_target_runs = if_target_runs;
    pic_eoi(0);
    // Back with IF clear: a second tick cannot land before the checks.
    frame->eflags &= ~EFLAGS_IF;
    return true;
  }
  if (frame->vector == 1) {
    ++db_count;
    db_eip = frame->eip;
    db_eflags = frame->eflags;
    db_target_runs = tf_target_runs;
    frame->eflags &= ~EFLAGS_TF;
    return true;
  }
  if (frame->vector < 32 && fault.armed) {
    fault.armed = false;
    ++fault.count;
    fault.vector = frame->vector;
    fault.error = frame->error;
    fault.eip = frame->eip;
    fault.cs = frame->cs & 0xFFFF;
    // At CPL 0 no SS:ESP is pushed: the frame ends at the interrupted ESP.
    fault.esp = (uint32_t)&frame->user_esp;
    fault.cr2 = read_cr2();
    frame->cs = SEL_KERNEL_CODE;
    frame->eip = (uint32_t)fault.resume;
    return true;
  }
  return false;
}

/* Busy-waits for n wrap-arounds of PIT channel 0's down-counter. */
static void wait_pit_wraps(uint32_t n) {
  uint16_t previous = pit_read_count();
  for (uint32_t wraps = 0; wraps < n;) {
    uint16_t now = pit_read_count();
    if (now > previous) ++wraps;
    previous = now;
  }
}

/* A timer tick requested at the PIC with IF clear. The PIT's count says a
 * period has passed, but QEMU raises the tick from a host timer that can
 * run late on a loaded host: the request itself is polled (OCW3 leaves
 * reads on the IRR), for a bounded time so that a lost tick fails the
 * checks instead of hanging. */
static void wait_tick_pending(void) {
  wait_pit_wraps(PENDING_WRAPS);
  outb(0x20, 0x0A);
  for (uint32_t polls = 0; polls < 10000000 && !(inb(0x20) & 1); ++polls) {
  }
}

static uint16_t read_cs(void) {
  uint16_t cs;
  __asm__ volatile("mov %%cs, %0" : "=r"(cs));
  return cs;
}

/* Loads CS = SEL_ALT_CODE with a flat descriptor, then writes GDT entry 6
 * (base, access) without reloading CS and irets to SEL_ALT_CODE:offset. */
static uint32_t iret_after_rewrite(uint32_t base, uint8_t access, uint32_t offset) {
  gdt_set_segment(6, 0, 0xFFFFF, CODE_ACCESS, CODE_FLAGS);
  to_alt_cs();
  gdt_set_segment(6, base, 0xFFFFF, access, CODE_FLAGS);
  alt_target_cs = 0;
  return iret_same_selector(offset);
}

static void check_descriptor_fault(const char* what, uint8_t access, uint32_t vector) {
  kprintf("%s\n", what);
  arm_fault(alt_fault_resume);
  check_eq("the iret faulted", iret_after_rewrite(0, access, (uint32_t)alt_target_a), 0xfa17);
  fault.armed = false;
  check_eq("one fault", fault.count, 1);
  check_eq("vector", fault.vector, vector);
  check_eq("error code is the selector", fault.error, SEL_ALT_CODE);
  check_eq("saved eip is the iret", fault.eip, (uint32_t)alt_iret_insn);
  check_eq("saved cs", fault.cs, SEL_ALT_CODE);
  check_eq("esp as before the iret", fault.esp, alt_iret_esp);
}

/* Writes the first words dwords of a frame returning to pf_iret_target at
 * esp, then irets with ESP = esp; a fault is caught in fault. */
static void iret_with_frame_at(uint32_t esp, uint32_t words) {
  const uint32_t frame[3] = {(uint32_t)pf_iret_target, SEL_KERNEL_CODE, read_eflags()};
  for (uint32_t i = 0; i < words; ++i) *linear_word(esp + 4 * i) = frame[i];
  pf_frame_esp = esp;
  pf_target_runs = 0;
  arm_fault(pf_resume);
  iret_on_frame();
  fault.armed = false;
}

/* An iret whose frame starts at esp, the part of it below the unmapped
 * page written: #PF at the first unreadable dword. */
static void check_unreadable_frame(const char* what, uint32_t esp) {
  kprintf("%s\n", what);
  iret_with_frame_at(esp, (FAULT_STACK_TOP - esp) / 4);
  check_eq("one fault", fault.count, 1);
  check_eq("vector", fault.vector, 14);
  check_eq("error code (not present, read, CPL 0)", fault.error, 0);
  check_eq("saved eip is the iret", fault.eip, (uint32_t)pf_iret_insn);
  check_eq("saved cs", fault.cs, SEL_KERNEL_CODE);
  check_eq("cr2 is the first byte of the unmapped page", fault.cr2, FAULT_STACK_TOP);
  check_eq("esp as before the iret", fault.esp, esp);
  check_eq("the target did not run", pf_target_runs, 0);
}

void guest_main(uint32_t magic, const struct multiboot_info* mbi) {
  (void)magic;
  (void)mbi;

  kprintf("iret to the next instruction, %u times\n", LOOP_IRETS);
  iret_loop();
  check_eq("irets counted", loop_irets, LOOP_IRETS);
  check_eq("ecx counted down", loop_seen.ecx, 0);
  check_eq("esp back to its value", loop_seen.esp_after, loop_seen.esp_before);
  check_eq("eax preserved", loop_seen.eax, 0x11111111);
  check_eq("ebx preserved", loop_seen.ebx, 0x22222222);
  check_eq("edx preserved", loop_seen.edx, 0x33333333);
  check_eq("esi preserved", loop_seen.esi, 0x44444444);
  check_eq("edi preserved", loop_seen.edi, 0x55555555);
  check_eq("ebp preserved", loop_seen.ebp, 0x66666666);

  kprintf("the EFLAGS image, read back by pushf at the target\n");
  check_flags("CF PF AF ZF SF OF DF set", 0, EFLAGS_ARITH);
  check_flags("CF PF AF ZF SF OF DF cleared", EFLAGS_ARITH, 0);
  check_flags("CF ZF OF set, PF AF SF DF cleared", EFLAGS_PF | EFLAGS_AF | EFLAGS_SF | EFLAGS_DF,
              EFLAGS_CF | EFLAGS_ZF | EFLAGS_OF);
  check_flags("PF AF SF DF set, CF ZF OF cleared", EFLAGS_CF | EFLAGS_ZF | EFLAGS_OF,
              EFLAGS_PF | EFLAGS_AF | EFLAGS_SF | EFLAGS_DF);
  check_flags("IOPL 0 to 3", 0, EFLAGS_IOPL3);
  check_flags("IOPL 3 to 0", EFLAGS_IOPL3, 0);
  check_flags("AC set", 0, EFLAGS_AC);
  check_flags("AC cleared", EFLAGS_AC, 0);
  check_flags("ID set", 0, EFLAGS_ID);
  check_flags("ID cleared", EFLAGS_ID, 0);
  check_flags("all of them at once", 0, EFLAGS_ARITH | EFLAGS_IOPL3 | EFLAGS_AC | EFLAGS_ID);
  check_flags("reserved bits set and bit 1 clear in the image are ignored", 0, EFLAGS_RESERVED);
  check_eq("TF IF DF IOPL AC ID clear again afterwards", read_eflags() & EFLAGS_CONTROL, 0);

  kprintf("IF through the image, a timer tick pending\n");
  pic_init(0x20);
  pit_start_periodic(TIMER_HZ);
  pic_unmask(0);
  wait_tick_pending();
  check_eq("no interrupt while IF=0", irq_count, 0);
  iret_if_set();
  // The handler returns with IF clear; cli keeps a missed delivery from
  // leaking interrupts into the checks that follow.
  cli();
  check_eq("one interrupt after the iret setting IF", irq_count, 1);
  check_eq("saved eip is the iret's target", irq_eip, (uint32_t)if_target);
  check_eq("taken before the target's first instruction", irq_target_runs, 0);
  check_eq("IF set in the interrupted EFLAGS", irq_eflags & EFLAGS_IF, EFLAGS_IF);
  check_eq("the target ran once", if_target_runs, 1);

  wait_tick_pending();
  uint32_t before = irq_count;
  check_eq("no interrupt at the target of an iret keeping IF clear", iret_if_clear() - before, 0);
  check_eq("the pending tick came after sti", irq_count - before, 1);
  check_eq("saved eip is after the hlt", irq_eip, (uint32_t)if_clear_after_hlt);

  wait_tick_pending();
  before = irq_count;
  check_eq("no interrupt after sti; iret with IF clear in the image",
           iret_if_clear_after_sti() - before, 0);
  check_eq("the pending tick came after the next sti", irq_count - before, 1);
  check_eq("saved eip is after the hlt", irq_eip, (uint32_t)if_shadow_after_hlt);
  pic_mask(0);

  kprintf("TF through the image\n");
  iret_tf_image();
  check_eq("one #DB", db_count, 1);
  check_eq("saved eip is the target's second instruction", db_eip, (uint32_t)tf_after_first);
  check_eq("the target's first instruction ran once", db_target_runs, 1);
  check_eq("TF set in the trapped EFLAGS", db_eflags & EFLAGS_TF, EFLAGS_TF);
  iret_tf_before();
  check_eq("TF set before an iret clearing it: one #DB", db_count, 2);
  check_eq("saved eip is the iret's target", db_eip, (uint32_t)tf_before_target);
  check_eq("taken before the target's first instruction", db_target_runs, 1);
  check_eq("TF clear in the trapped EFLAGS", db_eflags & EFLAGS_TF, 0);
  check_eq("TF clear afterwards", read_eflags() & EFLAGS_TF, 0);

  kprintf("iret to the selector in CS after its GDT entry changed\n");
  check_eq("identical descriptor: the target is reached",
           iret_after_rewrite(0, CODE_ACCESS, (uint32_t)alt_target_a), 0xa);
  check_eq("cs at the target", alt_target_cs, SEL_ALT_CODE);
  check_eq("new base: the target is at base + offset",
           iret_after_rewrite((uint32_t)(alt_target_b - alt_target_a), CODE_ACCESS,
                              (uint32_t)alt_target_a),
           0xb);
  check_eq("cs at the target", alt_target_cs, SEL_ALT_CODE);
  check_descriptor_fault("not-present descriptor: #NP", CODE_ACCESS & 0x7F, 11);
  check_descriptor_fault("DPL 3 descriptor: #GP", CODE_ACCESS | 0x60, 13);
  gdt_set_segment(6, 0, 0xFFFFF, CODE_ACCESS, CODE_FLAGS);
  check_eq("back on the flat cs", read_cs(), SEL_KERNEL_CODE);

  kprintf("return frame in a not-present page\n");
  paging_identity_4k(0, 0x400000, PTE_P | PTE_W);
  paging_map_4k(FAULT_STACK_TOP, FAULT_STACK_TOP, 0);
  paging_enable();
  check_unreadable_frame("EFLAGS unreadable", FAULT_STACK_TOP - 8);
  check_unreadable_frame("CS and EFLAGS unreadable", FAULT_STACK_TOP - 4);
  check_unreadable_frame("the whole frame unreadable", FAULT_STACK_TOP);

  kprintf("the page mapped again\n");
  paging_map_4k(FAULT_STACK_TOP, FAULT_STACK_TOP, PTE_P | PTE_W);
  invlpg(FAULT_STACK_TOP);
  iret_with_frame_at(FAULT_STACK_TOP - 8, 3);
  check_eq("no fault", fault.count, 0);
  check_eq("the target ran once", pf_target_runs, 1);
  guest_finish("iret_same_cpl");
}
