/* ad_bits: the accessed (A) and dirty (D) bits the CPU writes into page
 * tables, which a shadow MMU has to emulate. Fresh 4 KiB PTEs start with
 * A=D=0; a read sets A only, a write (alone or after a read) sets A and D,
 * an instruction fetch and the source of a movs set A only, a locked
 * read-modify-write and the destination of a movs set A and D, a dword
 * access across two pages sets the bits in both PTEs; so do the CPU's own
 * accesses: a push and an interrupt frame set A and D, reading an IDT
 * gate sets A. The PDE
 * over a page table gets A on the first access through it (and never D);
 * a 4 MiB page keeps A and D in its PDE. After the guest clears A, D or
 * both and invalidates (invlpg, a CR3 reload), the next read sets A again
 * and the next write D again, and a read alone never sets D. A CPL 0 write
 * through a read-only PTE with CR0.WP=1 is #PF (error 3) and leaves D
 * clear; with WP=0 it goes through and sets D. */
#include "tests/guests/lib/guest.h"
#include "tests/guests/lib/paging.h"
#include "tests/guests/lib/x86.h"

#define AD (PTE_A | PTE_D)
#define PAGES_4K 0x00800000u  // the 4 KiB test pages, in one fresh page table
#define READ_PAGE (PAGES_4K + 0x0000u)
#define WRITE_PAGE (PAGES_4K + 0x1000u)
#define READ_WRITE_PAGE (PAGES_4K + 0x2000u)
#define READ_ONLY_PAGE (PAGES_4K + 0x3000u)
#define CODE_PAGE (PAGES_4K + 0x4000u)
#define LOCKED_PAGE (PAGES_4K + 0x5000u)
#define MOVS_SOURCE_PAGE (PAGES_4K + 0x6000u)
#define MOVS_DEST_PAGE (PAGES_4K + 0x7000u)
#define SPLIT_LOW_PAGE (PAGES_4K + 0x8000u)  // a dword access across these two
#define SPLIT_HIGH_PAGE (PAGES_4K + 0x9000u)
#define PUSH_PAGE (PAGES_4K + 0xa000u)  // a stack page for push
#define TRAP_PAGE (PAGES_4K + 0xb000u)  // a stack page for an interrupt frame
#define IDT_ALIAS (PAGES_4K + 0xc000u)  // two pages: the IDT seen through an alias
#define VECTOR_ON_TRAP_PAGE 0x2f
#define BIG_PAGE 0x01000000u  // a 4 MiB page over physical 4-8 MiB
#define BIG_PAGE_PHYS 0x00400000u

enum {
  FRAME_READ,
  FRAME_WRITE,
  FRAME_READ_WRITE,
  FRAME_CODE,
  FRAME_LOCKED,
  FRAME_DEST,
  FRAME_SPLIT_LOW,
  FRAME_SPLIT_HIGH,
  FRAME_PUSH,
  FRAME_TRAP,
  FRAMES
};
static volatile uint32_t frames[FRAMES][1024] __attribute__((aligned(4096)));

__asm__(
    ".text\n"
    "write_read_only_page: mov $0x00803010, %edx; mov $0xdead, %eax\n"
    "wp_insn: movl %eax, (%edx)\n"
    "wp_next: ret\n");
void write_read_only_page(void);
extern const char wp_insn[], wp_next[];

static uint32_t* pde(uint32_t linear) {
  return (uint32_t*)read_cr3() + (linear >> 22);
}

static uint32_t pte_ad(uint32_t linear) {
  return *paging_pte(linear) & AD;
}

static uint32_t pde_ad(uint32_t linear) {
  return *pde(linear) & AD;
}

static void clear_pte_bits(uint32_t linear, uint32_t bits) {
  *paging_pte(linear) &= ~bits;
}

static void fresh_pages(void) {
  kprintf("fresh 4 KiB pages\n");
  check_eq("PDE over the test pages: A and D clear", pde_ad(PAGES_4K), 0);
  uint32_t dirty_or_accessed = 0;
  for (uint32_t page = PAGES_4K; page <= IDT_ALIAS + PAGE_SIZE; page += PAGE_SIZE) {
    dirty_or_accessed += pte_ad(page) != 0;
  }
  check_eq("test PTEs with A or D set", dirty_or_accessed, 0);

  check_eq("read", *linear_word(READ_PAGE + 8), 0xA0000002);
  check_eq("read sets A only", pte_ad(READ_PAGE), PTE_A);
  check_eq("the first access sets A in the PDE, not D", pde_ad(PAGES_4K), PTE_A);
  *linear_word(WRITE_PAGE + 12) = 0x11111111;
  check_eq("a first write sets A and D", pte_ad(WRITE_PAGE), AD);
  check_eq("the PDE still has no D", pde_ad(PAGES_4K), PTE_A);
  check_eq("read", *linear_word(READ_WRITE_PAGE + 16), 0xA0000004);
  check_eq("read sets A", pte_ad(READ_WRITE_PAGE), PTE_A);
  *linear_word(READ_WRITE_PAGE + 16) = 0x22222222;
  check_eq("a write after the read sets D", pte_ad(READ_WRITE_PAGE), AD);
  check_eq("the write reached the frame", frames[FRAME_READ_WRITE][4], 0x22222222);
}

static void fetch_locked_movs(void) {
  kprintf("fetch, locked add, movs\n");
  check_eq("call into the code page", ((uint32_t(*)(void))CODE_PAGE)(), 0x5a);
  check_eq("instruction fetch sets A only", pte_ad(CODE_PAGE), PTE_A);
  __asm__ volatile("lock addl $5, (%0)" ::"r"(LOCKED_PAGE + 20) : "memory");
  check_eq("lock add result", frames[FRAME_LOCKED][5], 0xA0000005 + 5);
  check_eq("lock add sets A and D", pte_ad(LOCKED_PAGE), AD);
  uint32_t src = MOVS_SOURCE_PAGE, dst = MOVS_DEST_PAGE, count = 16;
  __asm__ volatile("rep movsl" : "+S"(src), "+D"(dst), "+c"(count)::"memory");
  check_eq("movs copied", frames[FRAME_DEST][15], 0xA000000F);
  check_eq("movs source: A only", pte_ad(MOVS_SOURCE_PAGE), PTE_A);
  check_eq("movs destination: A and D", pte_ad(MOVS_DEST_PAGE), AD);
}

static void split_access(void) {
  kprintf("a dword across two pages\n");
  check_eq("read", *linear_word(SPLIT_HIGH_PAGE - 2), 0x0000a000);
  check_eq("the read sets A only, in the low page", pte_ad(SPLIT_LOW_PAGE), PTE_A);
  check_eq("and in the high page", pte_ad(SPLIT_HIGH_PAGE), PTE_A);
  *linear_word(SPLIT_HIGH_PAGE - 2) = 0x12345678;
  check_eq("the write sets D in the low page", pte_ad(SPLIT_LOW_PAGE), AD);
  check_eq("and in the high page", pte_ad(SPLIT_HIGH_PAGE), AD);
  check("both halves reached their frames",
        frames[FRAME_SPLIT_LOW][1023] == 0x567803ff && frames[FRAME_SPLIT_HIGH][0] == 0xa0001234);
}

struct table_pointer {
  uint16_t limit;
  uint32_t base;
} __attribute__((packed));

bool guest_trap(struct int_frame* frame) {
  return frame->vector == VECTOR_ON_TRAP_PAGE;
}

/* Accesses the CPU makes for an instruction: a push, an interrupt frame
 * (int from CPL 0 with ESP at the top of a fresh page), the IDT read. */
static void cpu_made_accesses(void) {
  kprintf("accesses the CPU makes\n");
  __asm__ volatile(
      "mov %%esp, %%ecx; mov %0, %%esp; push $1; mov %%ecx, %%esp" ::"i"(PUSH_PAGE + PAGE_SIZE)
      : "ecx", "memory");
  check_eq("push into a fresh stack page sets A and D", pte_ad(PUSH_PAGE), AD);
  __asm__ volatile(
      "mov %%esp, %%ebx; mov %0, %%esp; int %1; mov %%ebx, %%esp" ::"i"(TRAP_PAGE + PAGE_SIZE),
      "i"(VECTOR_ON_TRAP_PAGE)
      : "eax", "ebx", "ecx", "edx", "memory");
  check_eq("an interrupt frame on a fresh stack page sets A and D", pte_ad(TRAP_PAGE), AD);

  struct table_pointer idtr;
  __asm__ volatile("sidt %0" : "=m"(idtr));
  const struct table_pointer alias = {idtr.limit, IDT_ALIAS + (idtr.base & (PAGE_SIZE - 1))};
  const uint32_t gate = alias.base + 8 * VECTOR_ON_TRAP_PAGE;
  __asm__ volatile("lidt %0; int %1; lidt %2" ::"m"(alias), "i"(VECTOR_ON_TRAP_PAGE), "m"(idtr)
                   : "eax", "ecx", "edx", "memory");
  check_eq("an int through an IDT alias sets A, not D, on the gate's page", pte_ad(gate), PTE_A);
}

static void cleared_bits(void) {
  kprintf("bits cleared by the guest\n");
  clear_pte_bits(READ_WRITE_PAGE, AD);
  invlpg(READ_WRITE_PAGE);
  check_eq("A and D cleared, invlpg: read", *linear_word(READ_WRITE_PAGE + 16), 0x22222222);
  check_eq("the read sets A again, not D", pte_ad(READ_WRITE_PAGE), PTE_A);
  *linear_word(READ_WRITE_PAGE + 24) = 0x33333333;
  check_eq("the write sets D again", pte_ad(READ_WRITE_PAGE), AD);

  clear_pte_bits(READ_WRITE_PAGE, PTE_D);
  invlpg(READ_WRITE_PAGE);
  check_eq("D cleared, invlpg: read", *linear_word(READ_WRITE_PAGE + 24), 0x33333333);
  check_eq("the read leaves D clear", pte_ad(READ_WRITE_PAGE), PTE_A);
  *linear_word(READ_WRITE_PAGE + 28) = 0x44444444;
  check_eq("the write sets D again", pte_ad(READ_WRITE_PAGE), AD);

  clear_pte_bits(WRITE_PAGE, AD);
  write_cr3(read_cr3());
  check_eq("A and D cleared, CR3 reload: read", *linear_word(WRITE_PAGE + 12), 0x11111111);
  check_eq("the read sets A again, not D", pte_ad(WRITE_PAGE), PTE_A);
  *linear_word(WRITE_PAGE + 12) = 0x55555555;
  check_eq("the write sets D again", pte_ad(WRITE_PAGE), AD);

  clear_pte_bits(CODE_PAGE, PTE_A);
  invlpg(CODE_PAGE);
  check_eq("A cleared, invlpg: call into the code page", ((uint32_t(*)(void))CODE_PAGE)(), 0x5a);
  check_eq("the fetch sets A again", pte_ad(CODE_PAGE), PTE_A);

  *pde(PAGES_4K) &= ~PTE_A;
  invlpg(READ_PAGE);
  check_eq("PDE A cleared, invlpg: read", *linear_word(READ_PAGE + 8), 0xA0000002);
  check_eq("the read sets A in the PDE again", pde_ad(PAGES_4K), PTE_A);
}

static void big_page(void) {
  kprintf("4 MiB page\n");
  check_eq("PDE A and D start clear", pde_ad(BIG_PAGE), 0);
  volatile uint32_t* phys = linear_word(BIG_PAGE_PHYS + 0x1230);  // through the identity map
  *phys = 0x66666666;
  check_eq("identity-map write leaves the 4 MiB PDE alone", pde_ad(BIG_PAGE), 0);
  check_eq("read through the 4 MiB page", *linear_word(BIG_PAGE + 0x1230), 0x66666666);
  check_eq("the read sets A in the PDE only", pde_ad(BIG_PAGE), PTE_A);
  *linear_word(BIG_PAGE + 0x3ff000) = 0x77777777;
  check_eq("a write (last 4 KiB of the page) sets D in the PDE", pde_ad(BIG_PAGE), AD);
  check_eq("the write reached physical memory", *linear_word(BIG_PAGE_PHYS + 0x3ff000), 0x77777777);
  *pde(BIG_PAGE) &= ~AD;
  invlpg(BIG_PAGE + 0x1000);
  check_eq("A and D cleared, invlpg: read", *linear_word(BIG_PAGE + 0x1230), 0x66666666);
  check_eq("the read sets A again, not D", pde_ad(BIG_PAGE), PTE_A);
  *linear_word(BIG_PAGE + 0x1234) = 0x88888888;
  check_eq("the write sets D again", pde_ad(BIG_PAGE), AD);
}

static void write_protect(void) {
  kprintf("CR0.WP and a read-only PTE\n");
  struct caught_trap t;
  check_trap("CPL 0 write with CR0.WP=1 faults", write_read_only_page, wp_insn, wp_next, 14, &t);
  check_eq("error code (present, write)", t.frame.error, 3);
  check_eq("cr2", t.cr2, READ_ONLY_PAGE + 0x10);
  check_eq("the faulting write leaves D clear", pte_ad(READ_ONLY_PAGE) & PTE_D, 0);
  check_eq("the frame is unchanged", frames[FRAME_READ][4], 0xA0000004);
  write_cr0(read_cr0() & ~CR0_WP);
  check("with CR0.WP=0 the write goes through",
        !trap_catch(write_read_only_page, wp_next, &t) && frames[FRAME_READ][4] == 0xdead);
  check_eq("and sets A and D", pte_ad(READ_ONLY_PAGE), AD);
  write_cr0(read_cr0() | CR0_WP);
}

void guest_main(uint32_t magic, const struct multiboot_info* mbi) {
  (void)magic;
  (void)mbi;
  for (uint32_t f = 0; f < FRAMES; ++f) {
    for (uint32_t i = 0; i < 1024; ++i) frames[f][i] = 0xA0000000u | i;
  }
  static const uint8_t return_0x5a[] = {0xb8, 0x5a, 0x00, 0x00, 0x00, 0xc3};  // mov $0x5a,%eax; ret
  for (uint32_t i = 0; i < sizeof(return_0x5a); ++i) {
    ((volatile uint8_t*)frames[FRAME_CODE])[i] = return_0x5a[i];
  }
  paging_identity_4k(0, 0x00400000, PTE_P | PTE_W);
  paging_map_4k(READ_PAGE, (uint32_t)frames[FRAME_READ], PTE_P | PTE_W);
  paging_map_4k(WRITE_PAGE, (uint32_t)frames[FRAME_WRITE], PTE_P | PTE_W);
  paging_map_4k(READ_WRITE_PAGE, (uint32_t)frames[FRAME_READ_WRITE], PTE_P | PTE_W);
  paging_map_4k(READ_ONLY_PAGE, (uint32_t)frames[FRAME_READ], PTE_P);
  paging_map_4k(CODE_PAGE, (uint32_t)frames[FRAME_CODE], PTE_P | PTE_W);
  paging_map_4k(LOCKED_PAGE, (uint32_t)frames[FRAME_LOCKED], PTE_P | PTE_W);
  paging_map_4k(MOVS_SOURCE_PAGE, (uint32_t)frames[FRAME_READ], PTE_P | PTE_W);
  paging_map_4k(MOVS_DEST_PAGE, (uint32_t)frames[FRAME_DEST], PTE_P | PTE_W);
  paging_map_4k(SPLIT_LOW_PAGE, (uint32_t)frames[FRAME_SPLIT_LOW], PTE_P | PTE_W);
  paging_map_4k(SPLIT_HIGH_PAGE, (uint32_t)frames[FRAME_SPLIT_HIGH], PTE_P | PTE_W);
  paging_map_4k(PUSH_PAGE, (uint32_t)frames[FRAME_PUSH], PTE_P | PTE_W);
  paging_map_4k(TRAP_PAGE, (uint32_t)frames[FRAME_TRAP], PTE_P | PTE_W);
  struct table_pointer idtr;
  __asm__ volatile("sidt %0" : "=m"(idtr));
  for (uint32_t page = 0; page < 2; ++page) {
    paging_map_4k(IDT_ALIAS + page * PAGE_SIZE, (idtr.base & ~(PAGE_SIZE - 1)) + page * PAGE_SIZE,
                  PTE_P | PTE_W);
  }
  paging_identity_4k(BIG_PAGE_PHYS, BIG_PAGE_PHYS + 0x00400000, PTE_P | PTE_W);
  paging_map_4m(BIG_PAGE, BIG_PAGE_PHYS, PTE_P | PTE_W);
  paging_enable();
  kprintf("paging on\n");
  fresh_pages();
  fetch_locked_movs();
  split_access();
  cpu_made_accesses();
  cleared_bits();
  big_page();
  write_protect();
  guest_finish("ad_bits");
}
