/* paging: two-level paging with 4 KiB and 4 MiB (CR4.PSE) pages. Checks
 * that aliases of one physical page see each other's reads and writes, that
 * the CPU sets the accessed and dirty bits, that invlpg and a CR3 reload
 * make PTE changes visible, and that CR0.WP makes a read-only page fault
 * at CPL 0 (#PF, error code 3) while clearing WP lets the write through. */
#include "tests/guests/lib/paging.h"

#include "tests/guests/lib/guest.h"
#include "tests/guests/lib/x86.h"

#define ALIAS 0x00800000u            // 4 KiB alias of page_a, then page_b
#define READ_ONLY_ALIAS 0x00801000u  // read-only 4 KiB alias of page_a
#define BIG_PAGE_ALIAS 0x00802000u   // 4 KiB alias into the 4-8 MiB 4 MiB page
#define BIG_PAGE_PHYS 0x00500000u
#define LOW_4M_ALIAS 0x40000000u  // 4 MiB page: linear 1 GiB -> physical 0

/* volatile: the compiler cannot see that aliases reach the same memory. */
static volatile uint32_t page_a[1024] __attribute__((aligned(4096)));
static volatile uint32_t page_b[1024] __attribute__((aligned(4096)));

__asm__(
    ".text\n"
    "write_read_only_alias: push %edi; mov $0x00801010, %edi; mov $0xdead, %eax\n"
    "wp_insn: movl %eax, (%edi)\n"
    "wp_next: pop %edi; ret\n");  // %edi is callee-saved in the i386 ABI.
void write_read_only_alias(void);
extern const char wp_insn[], wp_next[];

void guest_main(uint32_t magic, const struct multiboot_info* mbi) {
  (void)magic;
  (void)mbi;
  for (uint32_t i = 0; i < 1024; ++i) {
    page_a[i] = 0xA0000000u | i;
    page_b[i] = 0xB0000000u | i;
  }
  paging_identity_4k(0, 0x00400000, PTE_P | PTE_W);
  paging_map_4m(0x00400000, 0x00400000, PTE_P | PTE_W);
  paging_map_4m(LOW_4M_ALIAS, 0, PTE_P | PTE_W);
  paging_map_4k(ALIAS, (uint32_t)page_a, PTE_P | PTE_W);
  paging_map_4k(READ_ONLY_ALIAS, (uint32_t)page_a, PTE_P);
  paging_map_4k(BIG_PAGE_ALIAS, BIG_PAGE_PHYS, PTE_P | PTE_W);
  paging_enable();
  kprintf("paging on\n");
  check("CR0.PG is set", (read_cr0() & CR0_PG) != 0);
  check("CR4.PSE is set", (read_cr4() & CR4_PSE) != 0);

  kprintf("4 KiB alias\n");
  volatile uint32_t* alias_pte = paging_pte(ALIAS);
  check_eq("PTE accessed and dirty start clear", *alias_pte & (PTE_A | PTE_D), 0);
  check_eq("alias reads the page", *linear_word(ALIAS + 4 * 7), 0xA0000007);
  check_eq("read sets accessed, not dirty", *alias_pte & (PTE_A | PTE_D), PTE_A);
  *linear_word(ALIAS + 4 * 9) = 0x12345678;
  check_eq("write sets dirty", *alias_pte & (PTE_A | PTE_D), PTE_A | PTE_D);
  check_eq("write through the alias is visible", page_a[9], 0x12345678);
  page_a[10] = 0x87654321;
  check_eq("write through the identity map is visible", *linear_word(ALIAS + 4 * 10), 0x87654321);

  kprintf("4 MiB pages\n");
  check_eq("4 MiB alias of low memory reads the page",
           *linear_word(LOW_4M_ALIAS + (uint32_t)&page_a[9]), 0x12345678);
  *linear_word(LOW_4M_ALIAS + (uint32_t)&page_a[11]) = 0x0badf00d;
  check_eq("write through the 4 MiB alias is visible", page_a[11], 0x0badf00d);
  *linear_word(BIG_PAGE_PHYS + 0x40) = 0x4d4d4d4d;
  check_eq("identity 4 MiB page and 4 KiB alias agree", *linear_word(BIG_PAGE_ALIAS + 0x40),
           0x4d4d4d4d);

  kprintf("TLB maintenance\n");
  *alias_pte = (uint32_t)page_b | PTE_P | PTE_W;
  invlpg(ALIAS);
  check_eq("after invlpg the alias reads the new page", *linear_word(ALIAS + 4 * 7), 0xB0000007);
  *alias_pte = (uint32_t)page_a | PTE_P | PTE_W;
  write_cr3(read_cr3());
  check_eq("after a CR3 reload the alias reads the old page", *linear_word(ALIAS + 4 * 7),
           0xA0000007);

  kprintf("CR0.WP\n");
  struct caught_trap t;
  if (!check("CPL0 write to a read-only page faults",
             trap_catch(write_read_only_alias, wp_next, &t))) {
    t = (struct caught_trap){0};
  }
  check_eq("vector", t.frame.vector, 14);
  check_eq("error code (present, write)", t.frame.error, 3);
  check_eq("cr2", t.cr2, READ_ONLY_ALIAS + 0x10);
  check_eq("saved eip", t.frame.eip, (uint32_t)wp_insn);
  check_eq("page unchanged", page_a[4], 0xA0000004);
  write_cr0(read_cr0() & ~CR0_WP);
  check("with CR0.WP clear the write goes through",
        !trap_catch(write_read_only_alias, wp_next, &t) && page_a[4] == 0xdead);
  write_cr0(read_cr0() | CR0_WP);
  guest_finish("paging");
}
