/* exceptions: CPU exceptions delivered through the guest IDT. Each fault
 * is raised by a tiny assembly routine with a label on the faulting
 * instruction (*_insn) and one just after it (*_next); the handler records
 * the frame, and the guest checks the vector, the error code, the saved EIP
 * (the faulting instruction for faults, the next one for the int3 trap),
 * CR2 for page faults and that registers hold their values at the fault
 * (precise state). Execution resumes at *_next. */
#include "tests/guests/lib/guest.h"
#include "tests/guests/lib/paging.h"
#include "tests/guests/lib/x86.h"

#define NOT_PRESENT_PAGE 0x00300000u
#define READ_ONLY_PAGE 0x00301000u

/* Each routine: set known register values, fault, return. */
__asm__(
    ".text\n"
    "raise_de: mov $0x12345678, %eax; xor %edx, %edx; xor %ecx, %ecx\n"
    "de_insn: divl %ecx\n"
    "de_next: ret\n"
    "raise_ud:\n"
    "ud_insn: ud2\n"
    "ud_next: ret\n"
    "raise_bp: mov $0xb0b0b0b0, %ebx\n"
    "bp_insn: int3\n"
    "bp_next: ret\n"
    "raise_gp_selector: mov $0x1000, %eax\n"
    "gp_selector_insn: mov %ax, %ds\n"
    "gp_selector_next: ret\n"
    "raise_gp_tss_in_ds: mov $0x28, %eax\n"
    "gp_tss_insn: mov %ax, %es\n"
    "gp_tss_next: ret\n"
    "raise_pf_read: mov $0x00300123, %esi; mov $0xaaaa5555, %eax\n"
    "pf_read_insn: mov (%esi), %eax\n"
    "pf_read_next: ret\n"
    "raise_pf_write_np: mov $0x00300ffc, %edi; mov $0x77, %eax\n"
    "pf_write_np_insn: movl %eax, (%edi)\n"
    "pf_write_np_next: ret\n"
    "raise_pf_write_ro: mov $0x00301456, %edi; mov $0x66, %eax\n"
    "pf_write_ro_insn: movb %al, (%edi)\n"
    "pf_write_ro_next: ret\n");

void raise_de(void);
void raise_ud(void);
void raise_bp(void);
void raise_gp_selector(void);
void raise_gp_tss_in_ds(void);
void raise_pf_read(void);
void raise_pf_write_np(void);
void raise_pf_write_ro(void);
extern const char de_insn[], de_next[], ud_insn[], ud_next[], bp_insn[], bp_next[];
extern const char gp_selector_insn[], gp_selector_next[], gp_tss_insn[], gp_tss_next[];
extern const char pf_read_insn[], pf_read_next[], pf_write_np_insn[], pf_write_np_next[];
extern const char pf_write_ro_insn[], pf_write_ro_next[];

static void expect_trap(const char* title, void (*raise)(void), const char* resume,
                        struct caught_trap* t) {
  kprintf("%s\n", title);
  if (!check("trap delivered", trap_catch(raise, resume, t))) {
    // Zero the record so the field checks that follow fail visibly.
    *t = (struct caught_trap){0};
  }
}

static void check_frame(const struct caught_trap* t, uint32_t vector, uint32_t error,
                        const char* eip) {
  check_eq("vector", t->frame.vector, vector);
  check_eq("error code", t->frame.error, error);
  check_eq("saved eip", t->frame.eip, (uint32_t)eip);
  check_eq("saved cs", t->frame.cs & 0xFFFF, SEL_KERNEL_CODE);
}

void guest_main(uint32_t magic, const struct multiboot_info* mbi) {
  (void)magic;
  (void)mbi;
  struct caught_trap t;

  expect_trap("#DE: div by zero", raise_de, de_next, &t);
  check_frame(&t, 0, 0, de_insn);
  check_eq("eax unchanged at the fault", t.frame.eax, 0x12345678);

  expect_trap("#UD: ud2", raise_ud, ud_next, &t);
  check_frame(&t, 6, 0, ud_insn);

  expect_trap("#BP: int3", raise_bp, bp_next, &t);
  check_frame(&t, 3, 0, bp_next);  // a trap: EIP is past the instruction
  check_eq("ebx at the trap", t.frame.ebx, 0xb0b0b0b0);

  expect_trap("#GP: selector beyond the GDT limit into DS", raise_gp_selector, gp_selector_next,
              &t);
  check_frame(&t, 13, 0x1000, gp_selector_insn);
  check_eq("ds kept its value", t.frame.ds & 0xFFFF, SEL_KERNEL_DATA);

  expect_trap("#GP: TSS selector into ES", raise_gp_tss_in_ds, gp_tss_next, &t);
  check_frame(&t, 13, SEL_TSS, gp_tss_insn);

  paging_identity_4k(0, 0x00400000, PTE_P | PTE_W);
  paging_map_4k(NOT_PRESENT_PAGE, NOT_PRESENT_PAGE, 0);
  paging_map_4k(READ_ONLY_PAGE, READ_ONLY_PAGE, PTE_P);
  *(volatile uint8_t*)0x00301456 = 0x5a;
  paging_enable();

  expect_trap("#PF: read of a not-present page", raise_pf_read, pf_read_next, &t);
  check_frame(&t, 14, 0, pf_read_insn);
  check_eq("cr2", t.cr2, 0x00300123);
  check_eq("destination register unchanged", t.frame.eax, 0xaaaa5555);

  expect_trap("#PF: write to a not-present page", raise_pf_write_np, pf_write_np_next, &t);
  check_frame(&t, 14, 2, pf_write_np_insn);
  check_eq("cr2", t.cr2, 0x00300ffc);

  expect_trap("#PF: CPL0 write to a read-only page with CR0.WP", raise_pf_write_ro,
              pf_write_ro_next, &t);
  check_frame(&t, 14, 3, pf_write_ro_insn);
  check_eq("cr2", t.cr2, 0x00301456);
  check_eq("read-only byte not written", *(volatile uint8_t*)0x00301456, 0x5a);

  kprintf("after the faults\n");
  check("interrupts still disabled", (read_eflags() & EFLAGS_IF) == 0);
  guest_finish("exceptions");
}
