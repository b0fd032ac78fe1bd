/* Two-level 32-bit paging for the test guests: one page directory and a
 * small pool of page tables, filled by the guest before paging_enable.
 * Usage:
 *   paging_identity_4k(0, 0x400000, PTE_P | PTE_W);
 *   paging_map_4m(0x400000, 0x400000, PTE_P | PTE_W);
 *   paging_enable();
 */
#pragma once

#include <stdint.h>

#define PTE_P 0x001u
#define PTE_W 0x002u
#define PTE_U 0x004u
#define PTE_A 0x020u
#define PTE_D 0x040u
#define PDE_PS 0x080u
#define PAGE_SIZE 0x1000u

/* The PTE that maps linear (its page table is taken from the pool on first
 * use; running out fails the guest). Writing it while paging is on needs an
 * invlpg afterwards, as on hardware. */
uint32_t* paging_pte(uint32_t linear);
void paging_map_4k(uint32_t linear, uint32_t phys, uint32_t flags);
void paging_identity_4k(uint32_t start, uint32_t end, uint32_t flags);
/* A 4 MiB page (needs CR4.PSE, which paging_enable sets). */
void paging_map_4m(uint32_t linear, uint32_t phys, uint32_t flags);
/* CR3 = the directory, CR4.PSE, then CR0.PG and CR0.WP. */
void paging_enable(void);

/* The 32-bit word at a linear address, volatile: the compiler cannot see
 * aliases or page-table changes. */
static inline volatile uint32_t* linear_word(uint32_t linear) {
  return (volatile uint32_t*)linear;
}
