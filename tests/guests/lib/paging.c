/* Page directory and page-table pool of the test guests (see paging.h).
 * The pool is fixed: a test guest maps a few MiB at most. */
#include "tests/guests/lib/paging.h"

#include "tests/guests/lib/guest.h"
#include "tests/guests/lib/x86.h"

#define TABLE_POOL_SIZE 4

static uint32_t directory[1024] __attribute__((aligned(4096)));
static uint32_t table_pool[TABLE_POOL_SIZE][1024] __attribute__((aligned(4096)));
static uint32_t tables_used;

uint32_t* paging_pte(uint32_t linear) {
  uint32_t* pde = &directory[linear >> 22];
  if ((*pde & PTE_P) == 0) {
    if (tables_used == TABLE_POOL_SIZE) {
      kprintf("FAIL paging: page-table pool exhausted\n");
      guest_exit(1);
    }
    // User-accessible and writable at the directory level, so the PTE alone
    // decides a page's protection.
    *pde = (uint32_t)table_pool[tables_used++] | PTE_P | PTE_W | PTE_U;
  }
  if (*pde & PDE_PS) {
    kprintf("FAIL paging: %x is inside a 4 MiB page\n", linear);
    guest_exit(1);
  }
  uint32_t* table = (uint32_t*)(*pde & ~0xFFFu);
  return &table[(linear >> 12) & 0x3FF];
}

void paging_map_4k(uint32_t linear, uint32_t phys, uint32_t flags) {
  *paging_pte(linear) = (phys & ~0xFFFu) | flags;
}

void paging_identity_4k(uint32_t start, uint32_t end, uint32_t flags) {
  for (uint32_t a = start; a < end; a += PAGE_SIZE) paging_map_4k(a, a, flags);
}

void paging_map_4m(uint32_t linear, uint32_t phys, uint32_t flags) {
  directory[linear >> 22] = (phys & 0xFFC00000u) | flags | PDE_PS;
}

void paging_enable(void) {
  write_cr3((uint32_t)directory);
  write_cr4(read_cr4() | CR4_PSE);
  write_cr0(read_cr0() | CR0_PG | CR0_WP);
}
