/* pt_writer: a guest that maps one of its own page tables into its address
 * space and rewrites PTEs through that mapping in a loop, as a kernel's
 * memory manager does. Every PTE write goes through one store instruction
 * (pte_store), far more often than a binary translator's adaptation
 * threshold, and every remapping is checked: after invlpg the remapped page
 * reads the data page the new PTE names, and the mapping window reads back
 * what was written. Under bt86's BT backend the page table is a traced
 * frame, so pte_store takes trace faults until it is retranslated
 * (tests/debugger checks `adapt` and `traces` on this guest). */
#include "tests/guests/lib/guest.h"
#include "tests/guests/lib/paging.h"
#include "tests/guests/lib/x86.h"

#define REMAPPED 0x00800000u   // PAGES pages whose PTEs the loop rewrites
#define PT_WINDOW 0x00c00000u  // the page table of REMAPPED, mapped as data
#define PAGES 8u
#define ROUNDS 64u

static volatile uint32_t data_pages[2][1024] __attribute__((aligned(4096)));

/* One store for every PTE write, so it has one EIP to adapt. */
__asm__(
    ".text\n"
    ".globl write_pte\n"
    "write_pte: mov 4(%esp), %eax; mov 8(%esp), %edx\n"
    ".globl pte_store\n"
    "pte_store: movl %edx, (%eax)\n"
    "ret\n");
void write_pte(volatile uint32_t* pte, uint32_t value);

__asm__(
    ".text\n"
    "read_remapped: mov $0x00800000, %eax\n"
    "load_remapped: mov (%eax), %eax\n"
    "load_remapped_next: ret\n");
void read_remapped(void);
extern const char load_remapped[], load_remapped_next[];

void guest_main(uint32_t magic, const struct multiboot_info* mbi) {
  (void)magic;
  (void)mbi;
  for (uint32_t i = 0; i < 1024; ++i) {
    data_pages[0][i] = 0xD0000000u | i;
    data_pages[1][i] = 0xD1000000u | i;
  }
  paging_identity_4k(0, 0x00400000, PTE_P | PTE_W);
  for (uint32_t p = 0; p < PAGES; ++p) {
    paging_map_4k(REMAPPED + p * PAGE_SIZE, (uint32_t)data_pages[0], PTE_P | PTE_W);
  }
  const uint32_t table = (uint32_t)paging_pte(REMAPPED) & ~(PAGE_SIZE - 1);
  paging_map_4k(PT_WINDOW, table, PTE_P | PTE_W);
  paging_enable();
  kprintf("paging on, page table of %08x mapped at %08x\n", REMAPPED, PT_WINDOW);

  volatile uint32_t* window = linear_word(PT_WINDOW + ((REMAPPED >> 12) & 0x3ff) * 4);
  check_eq("the window shows the first PTE", window[0] & ~0xfffu, (uint32_t)data_pages[0]);
  check_eq("the remapped page reads data page 0", *linear_word(REMAPPED + 4 * 5), 0xD0000005);

  uint32_t wrong_pte = 0, wrong_read = 0;
  for (uint32_t round = 0; round < ROUNDS; ++round) {
    for (uint32_t p = 0; p < PAGES; ++p) {
      const uint32_t which = (round + p) & 1;
      const uint32_t pte = (uint32_t)data_pages[which] | PTE_P | PTE_W;
      write_pte(&window[p], pte);
      invlpg(REMAPPED + p * PAGE_SIZE);
      if ((window[p] & ~(PTE_A | PTE_D)) != pte) ++wrong_pte;
      const uint32_t index = (round * 7 + p) & 0x3ff;
      const uint32_t want = (which ? 0xD1000000u : 0xD0000000u) | index;
      if (*linear_word(REMAPPED + p * PAGE_SIZE + index * 4) != want) ++wrong_read;
    }
  }
  kprintf("%u PTE writes through the window\n", ROUNDS * PAGES);
  check_eq("PTEs read back as written", wrong_pte, 0);
  check_eq("remapped pages read the data page their PTE names", wrong_read, 0);

  write_pte(&window[0], 0);
  invlpg(REMAPPED);
  struct caught_trap t;
  if (!check("a cleared PTE makes the page fault",
             trap_catch(read_remapped, load_remapped_next, &t))) {
    t = (struct caught_trap){0};
  }
  check_eq("vector", t.frame.vector, 14);
  check_eq("error code (not present, read)", t.frame.error, 0);
  check_eq("cr2", t.cr2, REMAPPED);
  check_eq("saved eip", t.frame.eip, (uint32_t)load_remapped);
  guest_finish("pt_writer");
}
