/* task_stacks: privilege-level stack switches through the TSS. A trap from
 * CPL 3 to a CPL 0 handler loads SS0:ESP0 from the TSS and pushes the
 * user's SS:ESP, EFLAGS and CS:EIP there; a trap from CPL 0 stays on the
 * current stack and pushes only EFLAGS, CS and EIP. The guest checks, for
 * an int $0x80 through a DPL 3 gate and for a #GP raised at CPL 3 (a ring-0
 * selector loaded into DS, error code = the selector):
 *   - the stack and SS the handler runs on, and where the frame sits;
 *   - every field of the pushed frame;
 *   - that a new ESP0 (and a new SS0) written into the TSS between two
 *     entries is the one the next entry uses;
 *   - that iret back to CPL 3 restores the user's SS:ESP and EFLAGS, also
 *     when the handler moved the user to another stack;
 *   - that an int from CPL 0 (at boot and nested inside a CPL 3 entry)
 *     does not switch stacks;
 *   - that int3, int $3 and into from CPL 3 through DPL 0 gates raise #GP
 *     (error code: the gate) at the instruction, through DPL 3 gates the
 *     trap with the next EIP, and that bound's #BR ignores the gate's DPL;
 *   - that timer interrupts (IRQ0) taken while CPL 3 spins with IF=1
 *     switch stacks the same way.
 * Paging stays off and interrupts are disabled but for the spin: this
 * guest tests privilege levels only. User code records what it saw in user_seen (the flat user
 * segments reach kernel data) and the kernel checks it at the exit call. */
#include "tests/guests/lib/guest.h"
#include "tests/guests/lib/x86.h"

#define SYS_PLAIN 1       // an entry that only checks the frame
#define SYS_TO_STACK_B 2  // also sets ESP0 to stack B for the next entry
#define SYS_TO_STACK_C 3  // also sets SS0:ESP0 to 0x30:stack C
#define SYS_MOVE_USER 4   // also moves the user to user_alt_stack
#define SYS_NESTED 5      // also runs a CPL 0 -> CPL 0 int inside the handler
#define SYS_EXIT 6
#define SYS_START_TIMER 7  // starts the PIT and returns with IF=1
#define SYS_GATES_DPL3 8   // gives the #BP and #OF gates DPL 3
#define TIMER_TICKS 3
#define VECTOR_SAME_CPL 0x2f
#define USER_FLAGS 0x8d7u  // OF SF ZF AF PF CF and the reserved bit 1
#define SEL_ALT_KERNEL_DATA 0x30
#define EFLAGS_RF (1u << 16)
#define STACK_SIZE 4096u

static uint8_t stack_a[STACK_SIZE] __attribute__((aligned(16)));
static uint8_t stack_b[STACK_SIZE] __attribute__((aligned(16)));
static uint8_t stack_c[STACK_SIZE] __attribute__((aligned(16)));
static uint8_t user_stack[STACK_SIZE] __attribute__((aligned(16)));
static uint8_t user_alt_stack[STACK_SIZE] __attribute__((aligned(16)));

/* What the user saw around its last trap; written by the asm below. */
struct user_view {
  uint32_t esp_before, esp_after, ss_after, eflags_after;
};
struct user_view user_seen;

/* The stack the next trap from CPL 3 must land on. */
static uint16_t want_ss0 = SEL_KERNEL_DATA;
static uint8_t* want_stack;

__asm__(
    ".text\n"
    /* enter_user(entry, stack_top): iret to CPL 3 with IF clear. */
    "enter_user: mov 4(%esp), %ecx; mov 8(%esp), %edx\n"
    "  mov $0x23, %eax; mov %ax, %ds; mov %ax, %es; mov %ax, %fs; mov %ax, %gs\n"
    "  push $0x23; push %edx; push $0x2; push $0x1b; push %ecx; iret\n"
    /* user_int80(number): int $0x80 with EDX = ESP and EFLAGS = USER_FLAGS;
       records ESP before and ESP, SS, EFLAGS after in user_seen. */
    "user_int80: push %ebx; mov 8(%esp), %eax\n"
    "  mov %esp, user_seen; mov %esp, %edx; pushl $0x8d7; popfl\n"
    "user_int80_insn: int $0x80\n"
    "user_int80_next: mov %esp, user_seen+4; movl $0, user_seen+8; mov %ss, user_seen+8\n"
    "  pushfl; popl user_seen+12\n"
    /* If the kernel moved the user stack, come back to the old one. */
    "  mov user_seen, %esp; pop %ebx; ret\n"
    /* user_load_kernel_ds(): a ring-0 selector into DS faults (#GP 0x10). */
    "user_load_kernel_ds: mov %esp, user_seen; mov %esp, %edx; mov $0x10, %eax\n"
    "  pushl $0x8d7; popfl\n"
    "user_gp_insn: mov %ax, %ds\n"
    "user_gp_next: mov %esp, user_seen+4; movl $0, user_seen+8; mov %ss, user_seen+8\n"
    "  pushfl; popl user_seen+12; ret\n"
    /* same_cpl_int(): int from CPL 0 with EDX = ESP. */
    "same_cpl_int: mov %esp, %edx; int $0x2f; ret\n"
    /* user_wait_ticks(): starts the timer, then spins at CPL 3 with IF=1
       until TIMER_TICKS interrupts have come (the last one clears IF). */
    "user_wait_ticks: mov %esp, user_seen; mov %esp, %edx; mov $7, %eax; pushl $0x8d7; popfl\n"
    "  int $0x80\n"
    "user_spin: cmpl $3, timer_ticks\n"
    "  jb user_spin\n"
    "user_spin_end: ret\n"
    /* Software interrupts and bound from CPL 3, each with EDX = ESP and
       EFLAGS = USER_FLAGS (OF set, so into traps). */
    "user_int3: mov %esp, %edx; pushl $0x8d7; popfl\n"
    "user_int3_insn: int3\n"
    "user_int3_next: ret\n"
    "user_int_3: mov %esp, %edx; pushl $0x8d7; popfl\n"
    "user_int_3_insn: .byte 0xcd, 0x03\n" /* int $3: the assembler would emit int3 */
    "user_int_3_next: ret\n"
    "user_into: mov %esp, %edx; pushl $0x8d7; popfl\n"
    "user_into_insn: into\n"
    "user_into_next: ret\n"
    "user_bound: push $5; push $1; mov $9, %eax; mov %esp, %edx; pushl $0x8d7; popfl\n"
    "user_bound_insn: bound %eax, (%esp)\n"
    "user_bound_next: add $8, %esp; ret\n");
__attribute__((noreturn)) void enter_user(void (*entry)(void), uint8_t* stack_top);
void user_int80(uint32_t number);
void user_load_kernel_ds(void);
void same_cpl_int(void);
void user_wait_ticks(void);
extern const char user_int80_insn[], user_int80_next[], user_gp_insn[], user_gp_next[];
extern const char user_spin[], user_spin_end[];
void user_int3(void);
void user_int_3(void);
void user_into(void);
void user_bound(void);
extern const char user_int3_insn[], user_int3_next[], user_int_3_insn[], user_int_3_next[];
extern const char user_into_insn[], user_into_next[], user_bound_insn[], user_bound_next[];

/* The traps the user's software interrupts must raise, in order. */
struct soft_event {
  const char* what;
  uint32_t vector, error;
  const char* eip;     // pushed EIP: the instruction (fault) or the next one (trap)
  const char* resume;  // where the user goes on
};
static const struct soft_event soft_events[] = {
    {"int3, DPL 0 gate: #GP(0x1a) at the int3", 13, 3 * 8 + 2, user_int3_insn, user_int3_next},
    {"int $3, DPL 0 gate: #GP(0x1a) at the int", 13, 3 * 8 + 2, user_int_3_insn, user_int_3_next},
    {"into, DPL 0 gate: #GP(0x22) at the into", 13, 4 * 8 + 2, user_into_insn, user_into_next},
    {"bound, DPL 0 gate: #BR at the bound (no DPL check)", 5, 0, user_bound_insn, user_bound_next},
    {"int3, DPL 3 gate: #BP after the int3", 3, 0, user_int3_next, user_int3_next},
    {"int $3, DPL 3 gate: #BP after the int", 3, 0, user_int_3_next, user_int_3_next},
    {"into, DPL 3 gate: #OF after the into", 4, 0, user_into_next, user_into_next},
};
static uint32_t soft_event_count;
volatile uint32_t timer_ticks;  // read by the user's spin loop
static uint32_t timer_ticks_with_wrong_frame;

static uint32_t top(const uint8_t* stack) {
  return (uint32_t)stack + STACK_SIZE;
}

static uint32_t handler_esp(void) {
  uint32_t esp;
  __asm__ volatile("mov %%esp, %0" : "=r"(esp));
  return esp;
}

static uint32_t handler_ss(void) {
  uint32_t ss = 0;
  __asm__ volatile("mov %%ss, %0" : "+r"(ss));
  return ss & 0xFFFF;
}

static bool on_stack(uint32_t esp, uint32_t stack_top) {
  return esp < stack_top && esp > stack_top - STACK_SIZE;
}

/* A trap from CPL 3: the handler runs on want_ss0:want_stack and the frame
 * holds the user's state; eip is where the user resumes or faulted. */
static void check_cpl3_entry(const struct int_frame* frame, uint32_t esp, uint32_t ss,
                             uint32_t eip) {
  check("handler ESP is on the ESP0 stack", on_stack(esp, top(want_stack)));
  check_eq("handler SS is SS0", ss, want_ss0);
  check_eq("frame ends at ESP0", (uint32_t)frame + sizeof(*frame), top(want_stack));
  check_eq("pushed SS", frame->user_ss & 0xFFFF, SEL_USER_DATA);
  check_eq("pushed ESP", frame->user_esp, frame->edx);
  check_eq("pushed CS", frame->cs & 0xFFFF, SEL_USER_CODE);
  check_eq("pushed EIP", frame->eip, eip);
  // A CPU may set RF in the EFLAGS image of a fault; that bit is not checked.
  check_eq("pushed EFLAGS", frame->eflags & ~EFLAGS_RF, USER_FLAGS);
}

/* A trap from CPL 0 (EDX = the ESP at the int): the frame sits right below
 * that ESP with no SS:ESP pushed, and SS is unchanged. */
static void check_same_cpl_entry(const struct int_frame* frame, uint32_t esp, uint32_t ss,
                                 uint32_t interrupted_ss) {
  check_eq("frame ends at the interrupted ESP (no SS:ESP pushed)", (uint32_t)&frame->user_esp,
           frame->edx);
  check("handler ESP is on the interrupted stack", esp < frame->edx && esp > frame->edx - 2048);
  check_eq("handler SS is the interrupted SS", ss, interrupted_ss);
  check_eq("pushed CS", frame->cs & 0xFFFF, SEL_KERNEL_CODE);
}

static uint32_t nested_interrupted_ss;

static void set_stack0(uint16_t ss0, uint8_t* stack) {
  want_ss0 = ss0;
  want_stack = stack;
  tss_set_stack0(ss0, top(stack));
}

static void user_exit_checks(void);

static void handle_syscall(struct int_frame* frame, uint32_t esp, uint32_t ss) {
  kprintf("int $0x80 from CPL 3, call %u\n", frame->eax);
  if (frame->eax != SYS_EXIT) {
    const char* resume = frame->eax == SYS_START_TIMER ? user_spin : user_int80_next;
    check_cpl3_entry(frame, esp, ss, (uint32_t)resume);
  }
  switch (frame->eax) {
    case SYS_PLAIN:
      return;
    case SYS_TO_STACK_B:
      kprintf("ESP0 = stack B for the next entry\n");
      set_stack0(SEL_KERNEL_DATA, stack_b);
      return;
    case SYS_TO_STACK_C:
      kprintf("SS0:ESP0 = 0x30:stack C for the next entry\n");
      set_stack0(SEL_ALT_KERNEL_DATA, stack_c);
      return;
    case SYS_MOVE_USER:
      kprintf("iret to another user stack\n");
      frame->user_esp = top(user_alt_stack) - 16;
      return;
    case SYS_NESTED:
      kprintf("int from CPL 0 inside the handler\n");
      nested_interrupted_ss = ss;
      same_cpl_int();
      return;
    case SYS_GATES_DPL3:
      kprintf("#BP and #OF gates get DPL 3\n");
      idt_set_gate(3, 3);
      idt_set_gate(4, 3);
      return;
    case SYS_START_TIMER:
      kprintf("timer interrupts while CPL 3 spins\n");
      pic_init(0x20);
      pit_start_periodic(1000);
      pic_unmask(0);
      frame->eflags |= EFLAGS_IF;
      return;
    case SYS_EXIT:
      user_exit_checks();
      guest_finish("task_stacks");
    default:
      kprintf("FAIL unknown call %u\n", frame->eax);
      guest_exit(1);
  }
}

/* IRQ0 while the user spins: the same stack switch as a trap, with the
 * interrupted EIP inside the spin loop. Reported after the last tick. */
static void handle_timer(struct int_frame* frame, uint32_t esp, uint32_t ss) {
  if (!on_stack(esp, top(want_stack)) || ss != want_ss0 ||
      (uint32_t)frame + sizeof(*frame) != top(want_stack) ||
      (frame->user_ss & 0xFFFF) != SEL_USER_DATA || frame->user_esp != user_seen.esp_before ||
      (frame->cs & 0xFFFF) != SEL_USER_CODE || frame->eip < (uint32_t)user_spin ||
      frame->eip > (uint32_t)user_spin_end || (frame->eflags & EFLAGS_IF) == 0) {
    ++timer_ticks_with_wrong_frame;
  }
  pic_eoi(0);
  if (++timer_ticks < TIMER_TICKS) return;
  pic_mask(0);
  frame->eflags &= ~EFLAGS_IF;
  check_eq("timer interrupts from CPL 3 with a wrong stack or frame", timer_ticks_with_wrong_frame,
           0);
}

/* #GP, #BP, #OF or #BR from a software interrupt or bound at CPL 3: the
 * next expected event, on the ESP0 stack with the user's frame. */
static bool handle_soft_event(struct int_frame* frame, uint32_t esp, uint32_t ss) {
  if (soft_event_count == sizeof(soft_events) / sizeof(soft_events[0])) return false;
  if (soft_event_count == 0) kprintf("int3, int $3, into, bound from CPL 3\n");
  const struct soft_event* e = &soft_events[soft_event_count++];
  check(e->what, frame->vector == e->vector && frame->error == e->error &&
                     frame->eip == (uint32_t)e->eip && on_stack(esp, top(want_stack)) &&
                     ss == want_ss0 && (uint32_t)frame + sizeof(*frame) == top(want_stack) &&
                     frame->user_esp == frame->edx && (frame->user_ss & 0xFFFF) == SEL_USER_DATA &&
                     (frame->cs & 0xFFFF) == SEL_USER_CODE &&
                     (frame->eflags & ~EFLAGS_RF) == USER_FLAGS);
  frame->eip = (uint32_t)e->resume;
  return true;
}

bool guest_trap(struct int_frame* frame) {
  const uint32_t esp = handler_esp(), ss = handler_ss();
  if (frame->vector == 0x80) {
    handle_syscall(frame, esp, ss);
    return true;
  }
  if (frame->vector == 13 && frame->eip == (uint32_t)user_gp_insn) {
    kprintf("#GP from CPL 3 at mov %%ax, %%ds\n");
    check_eq("error code is the selector", frame->error, SEL_KERNEL_DATA);
    check_cpl3_entry(frame, esp, ss, (uint32_t)user_gp_insn);
    frame->eip = (uint32_t)user_gp_next;
    return true;
  }
  if ((frame->cs & 3) == 3 &&
      (frame->vector == 3 || frame->vector == 4 || frame->vector == 5 || frame->vector == 13)) {
    return handle_soft_event(frame, esp, ss);
  }
  if (frame->vector == 0x20) {
    handle_timer(frame, esp, ss);
    return true;
  }
  if (frame->vector == VECTOR_SAME_CPL) {
    check_same_cpl_entry(frame, esp, ss, nested_interrupted_ss);
    return true;
  }
  return false;
}

/* User side: the results of each step, checked by the kernel at exit. */
#define STEPS 8
static struct user_view user_steps[STEPS];
static uint32_t user_step_count;

static void user_record(void) {
  if (user_step_count < STEPS) user_steps[user_step_count++] = user_seen;
}

static void user_main(void) {
  user_int80(SYS_PLAIN);
  user_record();
  user_int80(SYS_TO_STACK_B);
  user_record();
  user_int80(SYS_PLAIN);
  user_record();
  user_load_kernel_ds();
  user_record();
  user_int80(SYS_TO_STACK_C);
  user_record();
  user_int80(SYS_MOVE_USER);
  user_record();
  user_int80(SYS_NESTED);
  user_record();
  user_int3();
  user_int_3();
  user_into();
  user_bound();
  user_int80(SYS_GATES_DPL3);
  user_int3();
  user_int_3();
  user_into();
  user_wait_ticks();
  user_int80(SYS_EXIT);
  for (;;) {
  }
}

static void user_exit_checks(void) {
  kprintf("back at CPL 3 after each entry\n");
  check_eq("steps recorded", user_step_count, 7);
  for (uint32_t i = 0; i < user_step_count; ++i) {
    const struct user_view* v = &user_steps[i];
    const bool moved = i == 5;
    kprintf("step %u\n", i + 1);
    check_eq("user ESP after iret", v->esp_after, moved ? top(user_alt_stack) - 16 : v->esp_before);
    check_eq("user SS after iret", v->ss_after, SEL_USER_DATA);
    check_eq("user EFLAGS after iret", v->eflags_after, USER_FLAGS);
  }
}

void guest_main(uint32_t magic, const struct multiboot_info* mbi) {
  (void)magic;
  (void)mbi;
  idt_set_gate(0x80, 3);
  gdt_set_segment(6, 0, 0xFFFFF, 0x92, 0xC);  // 0x30: a second flat ring-0 data segment

  kprintf("int from CPL 0 at boot\n");
  nested_interrupted_ss = SEL_KERNEL_DATA;
  same_cpl_int();

  set_stack0(SEL_KERNEL_DATA, stack_a);
  kprintf("entering CPL 3, ESP0 = stack A\n");
  enter_user(user_main, user_stack + sizeof(user_stack));
}
