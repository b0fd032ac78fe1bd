/* user_syscall: a CPL 3 task and system calls through int 0x80. The kernel
 * enters user code with iret; the user code prints through a write system
 * call and ends with an exit system call. The int 0x80 gate has DPL 3, so
 * the CPU switches to the TSS's SS0:ESP0; the kernel checks that the frame
 * sits at the top of that stack and holds the user's SS:ESP (the user
 * passes its ESP in EDX). The user also runs cli and int $0x20 (a DPL 0
 * gate): both must raise #GP from CPL 3, which the kernel reports and skips.
 * The kernel enters user code with CR4.TSD set, so the user's rdtsc raises
 * #GP too; after a system call that clears CR4.TSD the same rdtsc runs.
 * Paging stays off: this guest tests privilege levels, not the MMU. */
#include "tests/guests/lib/guest.h"
#include "tests/guests/lib/x86.h"

#define SYS_WRITE 1
#define SYS_EXIT 2
#define SYS_ALLOW_RDTSC 3
#define CR4_TSD 0x4
#define USER_EXIT_MAGIC 0x5a00

static uint8_t user_stack[4096] __attribute__((aligned(16)));
static uint32_t syscalls;
static uint32_t syscalls_with_bad_frame;

__asm__(
    ".text\n"
    /* enter_user(entry, stack_top): iret to CPL 3 with IF clear (no PIC
       set-up here, so no interrupt may arrive). */
    "enter_user: mov 4(%esp), %ecx; mov 8(%esp), %edx\n"
    "  mov $0x23, %eax; mov %ax, %ds; mov %ax, %es; mov %ax, %fs; mov %ax, %gs\n"
    "  push $0x23; push %edx; push $0x2; push $0x1b; push %ecx; iret\n"
    "user_cli:\n"
    "user_cli_insn: cli\n"
    "user_cli_next: ret\n"
    "user_int_dpl0:\n"
    "user_int_insn: int $0x20\n"
    "user_int_next: ret\n"
    "user_rdtsc:\n"
    "user_rdtsc_insn: rdtsc\n"
    "user_rdtsc_next: ret\n");
__attribute__((noreturn)) void enter_user(void (*entry)(void), uint8_t* stack_top);
void user_cli(void);
void user_int_dpl0(void);
void user_rdtsc(void);
extern const char user_cli_insn[], user_cli_next[], user_int_insn[], user_int_next[];
extern const char user_rdtsc_insn[], user_rdtsc_next[];

/* User side: only system calls, never port I/O or kernel functions. */
static uint32_t user_syscall(uint32_t number, uint32_t arg1, uint32_t arg2) {
  uint32_t result;
  __asm__ volatile("mov %%esp, %%edx; int $0x80"
                   : "=a"(result)
                   : "a"(number), "b"(arg1), "c"(arg2)
                   : "edx", "memory");
  return result;
}

static uint32_t user_write(const char* s) {
  uint32_t len = 0;
  while (s[len] != '\0') ++len;
  return user_syscall(SYS_WRITE, (uint32_t)s, len) == len ? 0 : 1;
}

static void user_main(void) {
  uint32_t failures = 0;
  failures += user_write("user: hello from CPL 3\n");
  uint16_t cs;
  __asm__ volatile("mov %%cs, %0" : "=r"(cs));
  failures += (cs & 3) == 3 ? 0 : 1;
  failures += user_write("user: trying cli\n");
  user_cli();
  failures += user_write("user: trying int $0x20\n");
  user_int_dpl0();
  failures += user_write("user: trying rdtsc with CR4.TSD set\n");
  user_rdtsc();
  user_syscall(SYS_ALLOW_RDTSC, 0, 0);
  failures += user_write("user: rdtsc with CR4.TSD clear\n");
  user_rdtsc();
  failures += user_write("user: exiting\n");
  user_syscall(SYS_EXIT, USER_EXIT_MAGIC | failures, 0);
  for (;;) {
  }
}

static void check_user_frame(const struct int_frame* frame) {
  check_eq("saved cs is the user code segment", frame->cs & 0xFFFF, SEL_USER_CODE);
  check_eq("saved ss is the user data segment", frame->user_ss & 0xFFFF, SEL_USER_DATA);
  check("saved esp is on the user stack",
        frame->user_esp > (uint32_t)user_stack &&
            frame->user_esp <= (uint32_t)user_stack + sizeof(user_stack));
  check_eq("frame is at the top of the TSS ESP0 stack", (uint32_t)frame + sizeof(struct int_frame),
           tss_esp0());
}

static void handle_general_protection(struct int_frame* frame, const char* next) {
  check_eq("error code", frame->error, frame->eip == (uint32_t)user_int_insn ? 0x20 * 8 + 2 : 0);
  check_user_frame(frame);
  frame->eip = (uint32_t)next;
}

static void handle_syscall(struct int_frame* frame) {
  ++syscalls;
  // Checked on every call, reported once at exit.
  if (frame->user_esp != frame->edx || (frame->cs & 0xFFFF) != SEL_USER_CODE ||
      (frame->user_ss & 0xFFFF) != SEL_USER_DATA ||
      (uint32_t)frame + sizeof(struct int_frame) != tss_esp0()) {
    ++syscalls_with_bad_frame;
  }
  switch (frame->eax) {
    case SYS_WRITE:
      serial_write((const char*)frame->ebx, frame->ecx);
      frame->eax = frame->ecx;
      return;
    case SYS_ALLOW_RDTSC:
      write_cr4(read_cr4() & ~CR4_TSD);
      return;
    case SYS_EXIT:
      kprintf("kernel: exit system call\n");
      check_eq("user reports no failures", frame->ebx, USER_EXIT_MAGIC);
      check_eq("system calls made", syscalls, 8);
      check_eq("system calls with a wrong CS, SS:ESP or frame place", syscalls_with_bad_frame, 0);
      guest_finish("user_syscall");
    default:
      kprintf("FAIL kernel: unknown system call %u\n", frame->eax);
      guest_exit(1);
  }
}

bool guest_trap(struct int_frame* frame) {
  if (frame->vector == 0x80) {
    handle_syscall(frame);
    return true;
  }
  if (frame->vector == 13 && frame->eip == (uint32_t)user_cli_insn) {
    kprintf("kernel: #GP from CPL 3 at cli\n");
    handle_general_protection(frame, user_cli_next);
    return true;
  }
  if (frame->vector == 13 && frame->eip == (uint32_t)user_rdtsc_insn) {
    kprintf("kernel: #GP from CPL 3 at rdtsc (CR4.TSD)\n");
    handle_general_protection(frame, user_rdtsc_next);
    return true;
  }
  if (frame->vector == 13 && frame->eip == (uint32_t)user_int_insn) {
    kprintf("kernel: #GP from CPL 3 at int $0x20 (DPL 0 gate)\n");
    handle_general_protection(frame, user_int_next);
    return true;
  }
  return false;
}

void guest_main(uint32_t magic, const struct multiboot_info* mbi) {
  (void)magic;
  (void)mbi;
  idt_set_gate(0x80, 3);
  write_cr4(read_cr4() | CR4_TSD);
  kprintf("kernel: entering CPL 3\n");
  enter_user(user_main, user_stack + sizeof(user_stack));
}
