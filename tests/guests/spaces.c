/* spaces: several address spaces, switched by CR3 writes. Three page
 * directories share the kernel's identity map (0-4 MiB) and map the same
 * linear pages to different frames: a data page; a code page holding a
 * different routine in each space; a code page shared by all spaces whose
 * routine reads the data page; and a page-crossing routine, its first
 * instruction running from the shared page into a page that differs per
 * space. A round-robin loop of 999 CR3 switches calls the routines and
 * reads and writes the data page in each space: every space must see its
 * own data and run its own code at the same linear address (a binary
 * translator must not reuse one space's translation or data address in
 * another). Code in a per-space page that writes CR3 goes on with the
 * new space's bytes. Then a PTE changed in one space (with invlpg)
 * changes only that space, for data and for code; so does a routine
 * rewritten from another space; a not-present code page faults only in
 * its own space (#PF at the fetch); and remapping the second page of the
 * page-crossing routine changes what it returns. Last, global pages
 * (CR4.PGE, G on the kernel's PTEs and on a page shared by all spaces):
 * the loop runs again with the kernel global, and changes to the global
 * PTE show in every space after invlpg and after a CR4.PGE toggle. */
#include "tests/guests/lib/guest.h"
#include "tests/guests/lib/paging.h"
#include "tests/guests/lib/x86.h"

#define PTE_G 0x100u
#define SPACES 3u
#define DATA 0x00800000u            // per space: its own data frame
#define CODE 0x00801000u            // per space: its own routine
#define SHARED_CODE 0x00802000u     // one frame in every space: returns *DATA
#define TAIL_PAGE 0x00803000u       // per space: the end of the page-crossing routine
#define SPLIT_CODE (TAIL_PAGE - 4)  // a routine whose first instruction crosses the pages
#define SWITCH_CODE 0x00804000u     // per space: writes CR3, then returns a per-space value
#define GLOBAL_PAGE 0x00c00000u     // one global frame in every space
#define MARKER(s) (0x5a000000u | (s))
#define COUNTER 1  // word of a data frame the loop increments

static uint32_t directories[SPACES][1024] __attribute__((aligned(4096)));
static uint32_t space_tables[SPACES][1024] __attribute__((aligned(4096)));
static uint32_t global_table[1024] __attribute__((aligned(4096)));
static volatile uint32_t data_frames[SPACES + 1][1024] __attribute__((aligned(4096)));
static uint8_t code_frames[SPACES + 1][4096] __attribute__((aligned(4096)));
static uint8_t shared_code_frame[4096] __attribute__((aligned(4096)));
static uint8_t tail_frames[SPACES + 1][4096] __attribute__((aligned(4096)));
static uint8_t switch_frames[SPACES][4096] __attribute__((aligned(4096)));
static volatile uint32_t global_frames[2][1024] __attribute__((aligned(4096)));

/* The routines, as machine code copied into the code frames. */
static const uint8_t code_space0[] = {0xb8, 0x00, 0x00, 0xde, 0xc0, 0xc3};  // mov $0xc0de0000, %eax
static const uint8_t code_space1[] = {0xa1, 0x00, 0x00, 0x80, 0x00,         // mov 0x800000, %eax
                                      0x05, 0x00, 0x10, 0xde, 0xc0,         // add $0xc0de1000, %eax
                                      0xc3};
static const uint8_t code_space2[] = {0x31, 0xc0,                    // xor %eax, %eax
                                      0x0d, 0x00, 0x20, 0xde, 0xc0,  // or $0xc0de2000, %eax
                                      0x40,                          // inc %eax
                                      0xc3};
static const uint8_t code_replacement[] = {0xb8, 0x22, 0x22, 0xde, 0xc0, 0xc3};  // $0xc0de2222
static const uint8_t code_shared[] = {0xa1, 0x00, 0x00, 0x80, 0x00, 0xc3};  // mov 0x800000, %eax
/* SPLIT_CODE: "mov $0xTT332211, %eax; add $S, %eax; ret", the first three
   bytes at the end of the shared page, TT and the rest in the space's
   TAIL_PAGE frame. */
static const uint8_t code_split_head[] = {0xb8, 0x11, 0x22, 0x33};
static void write_split_tail(uint8_t* frame, uint8_t top_byte, uint8_t addend) {
  const uint8_t tail[] = {top_byte, 0x83, 0xc0, addend, 0xc3};
  for (uint32_t i = 0; i < sizeof(tail); ++i) frame[i] = tail[i];
}
#define SPLIT_RESULT(top_byte, addend) (((uint32_t)(top_byte) << 24 | 0x332211u) + (addend))
/* SWITCH_CODE: "mov %edx, %cr3; mov $0x5c000000+s, %eax; ret": the mov
   after the CR3 write runs from the new space's frame. */
static const uint8_t code_switch[] = {0x0f, 0x22, 0xda, 0xb8, 0x00, 0x00, 0x00, 0x5c, 0xc3};
#define SWITCH_RESULT(s) (0x5c000000u | (s))

/* What each space must see; updated when a test remaps a page. */
static uint32_t want_code[SPACES] = {0xc0de0000u, MARKER(1) + 0xc0de1000u, 0xc0de2001u};
static uint32_t want_marker[SPACES] = {MARKER(0), MARKER(1), MARKER(2)};
static uint32_t want_split[SPACES] = {SPLIT_RESULT(0x40, 0), SPLIT_RESULT(0x41, 1),
                                      SPLIT_RESULT(0x42, 2)};
static volatile uint32_t* counter_frame[SPACES] = {data_frames[0], data_frames[1], data_frames[2]};

static uint32_t call(uint32_t linear) {
  return ((uint32_t(*)(void))linear)();
}

static void copy_code(uint8_t* frame, const uint8_t* code, uint32_t size) {
  for (uint32_t i = 0; i < size; ++i) frame[i] = code[i];
}

static void switch_to(uint32_t space) {
  write_cr3((uint32_t)directories[space]);
}

/* switches CR3 round robin; in each space calls both routines, reads the
 * marker and increments the counter through DATA. */
static void round_robin(uint32_t switches) {
  uint32_t wrong_code = 0, wrong_shared = 0, wrong_split = 0, wrong_marker = 0;
  uint32_t before[SPACES], visits[SPACES] = {0};
  for (uint32_t s = 0; s < SPACES; ++s) before[s] = counter_frame[s][COUNTER];
  for (uint32_t i = 0; i < switches; ++i) {
    const uint32_t s = i % SPACES;
    switch_to(s);
    if (call(CODE) != want_code[s]) ++wrong_code;
    if (call(SHARED_CODE) != want_marker[s]) ++wrong_shared;
    if (call(SPLIT_CODE) != want_split[s]) ++wrong_split;
    if (*linear_word(DATA) != want_marker[s]) ++wrong_marker;
    ++*linear_word(DATA + 4 * COUNTER);
    ++visits[s];
  }
  switch_to(0);
  kprintf("%u CR3 switches\n", switches);
  check_eq("calls of the space's own routine with a wrong result", wrong_code, 0);
  check_eq("calls of the shared routine with a wrong result", wrong_shared, 0);
  check_eq("calls of the page-crossing routine with a wrong result", wrong_split, 0);
  check_eq("reads of the space's marker with a wrong result", wrong_marker, 0);
  uint32_t wrong_counters = 0;
  for (uint32_t s = 0; s < SPACES; ++s) {
    if (counter_frame[s][COUNTER] - before[s] != visits[s]) ++wrong_counters;
  }
  check_eq("spaces whose counter frame missed an increment", wrong_counters, 0);
}

static void build_spaces(void) {
  paging_identity_4k(0, 0x00400000, PTE_P | PTE_W);
  const uint32_t kernel_table = (uint32_t)paging_pte(0) & ~(PAGE_SIZE - 1);
  const uint8_t* codes[SPACES] = {code_space0, code_space1, code_space2};
  const uint32_t code_sizes[SPACES] = {sizeof(code_space0), sizeof(code_space1),
                                       sizeof(code_space2)};
  for (uint32_t s = 0; s <= SPACES; ++s) {
    for (uint32_t i = 0; i < 1024; ++i) data_frames[s][i] = 0;
    data_frames[s][0] = MARKER(s < SPACES ? s : 0xa1);
  }
  for (uint32_t s = 0; s < SPACES; ++s) {
    copy_code(code_frames[s], codes[s], code_sizes[s]);
    directories[s][0] = kernel_table | PTE_P | PTE_W;
    directories[s][DATA >> 22] = (uint32_t)space_tables[s] | PTE_P | PTE_W;
    directories[s][GLOBAL_PAGE >> 22] = (uint32_t)global_table | PTE_P | PTE_W;
    space_tables[s][(DATA >> 12) & 0x3ff] = (uint32_t)data_frames[s] | PTE_P | PTE_W;
    space_tables[s][(CODE >> 12) & 0x3ff] = (uint32_t)code_frames[s] | PTE_P | PTE_W;
    space_tables[s][(SHARED_CODE >> 12) & 0x3ff] = (uint32_t)shared_code_frame | PTE_P | PTE_W;
    space_tables[s][(TAIL_PAGE >> 12) & 0x3ff] = (uint32_t)tail_frames[s] | PTE_P | PTE_W;
    write_split_tail(tail_frames[s], (uint8_t)(0x40 + s), (uint8_t)s);
    space_tables[s][(SWITCH_CODE >> 12) & 0x3ff] = (uint32_t)switch_frames[s] | PTE_P | PTE_W;
    copy_code(switch_frames[s], code_switch, sizeof(code_switch));
    switch_frames[s][4] = (uint8_t)s;
  }
  copy_code(code_frames[SPACES], code_replacement, sizeof(code_replacement));
  copy_code(shared_code_frame, code_shared, sizeof(code_shared));
  copy_code(shared_code_frame + PAGE_SIZE - 4, code_split_head, sizeof(code_split_head));
  write_split_tail(tail_frames[SPACES], 0x4f, 9);
  for (uint32_t g = 0; g < 2; ++g) {
    for (uint32_t i = 0; i < 1024; ++i) global_frames[g][i] = 0x6000000u * (g + 1) + i;
  }
  global_table[0] = (uint32_t)global_frames[0] | PTE_P | PTE_W | PTE_G;
}

static void remap_one_space(void) {
  kprintf("a data PTE changed in space 1\n");
  switch_to(1);
  space_tables[1][(DATA >> 12) & 0x3ff] = (uint32_t)data_frames[SPACES] | PTE_P | PTE_W;
  invlpg(DATA);
  check_eq("space 1 reads the new frame", *linear_word(DATA), MARKER(0xa1));
  check_eq("space 1's routine adds the new marker", call(CODE), MARKER(0xa1) + 0xc0de1000u);
  switch_to(0);
  check_eq("space 0 still reads its own frame", *linear_word(DATA), MARKER(0));
  switch_to(2);
  check_eq("space 2 still reads its own frame", *linear_word(DATA), MARKER(2));
  want_marker[1] = MARKER(0xa1);
  want_code[1] = MARKER(0xa1) + 0xc0de1000u;
  counter_frame[1] = data_frames[SPACES];

  kprintf("a code PTE changed in space 2\n");
  space_tables[2][(CODE >> 12) & 0x3ff] = (uint32_t)code_frames[SPACES] | PTE_P | PTE_W;
  invlpg(CODE);
  check_eq("space 2 runs the new routine", call(CODE), 0xc0de2222u);
  switch_to(0);
  check_eq("space 0 still runs its own routine", call(CODE), 0xc0de0000u);
  switch_to(1);
  check_eq("space 1 still runs its own routine", call(CODE), want_code[1]);
  want_code[2] = 0xc0de2222u;
  round_robin(300);
}

/* Jumps to CODE with the return address pushed, so that CODE's ret and a
 * resume after a fault at CODE both come back through code_fetch_next. */
__asm__(
    ".text\n"
    "code_fetch: push $code_fetch_next; jmp 0x00801000\n"
    "code_fetch_next: ret\n");
void code_fetch(void);
extern const char code_fetch_next[];

/* Calls SWITCH_CODE in the current space with EDX = the next space's
 * directory, round robin: each call must come back from the next space. */
static void switch_from_space_code(void) {
  kprintf("CR3 written by code in a per-space page\n");
  uint32_t wrong_result = 0, wrong_cr3 = 0, space = 0;
  switch_to(0);
  for (uint32_t i = 0; i < 300; ++i) {
    const uint32_t next = (space + 1) % SPACES;
    uint32_t result;
    __asm__ volatile("call *%2"
                     : "=a"(result)
                     : "d"(directories[next]), "r"(SWITCH_CODE)
                     : "ecx", "memory");
    if (result != SWITCH_RESULT(next)) ++wrong_result;
    if (read_cr3() != (uint32_t)directories[next]) ++wrong_cr3;
    space = next;
  }
  switch_to(0);
  check_eq("calls whose next instruction did not come from the new space", wrong_result, 0);
  check_eq("calls that left a wrong CR3", wrong_cr3, 0);
}

static void code_changes(void) {
  kprintf("space 1's routine rewritten from space 0\n");
  switch_to(0);
  code_frames[1][7] = 0x11;  // add $0xc0de1000 -> add $0xc0de1100
  switch_to(1);
  want_code[1] += 0x100;
  check_eq("space 1 runs the new routine", call(CODE), want_code[1]);
  switch_to(0);
  check_eq("space 0 still runs its own routine", call(CODE), want_code[0]);

  kprintf("space 2's code page not present\n");
  uint32_t* code_pte = &space_tables[2][(CODE >> 12) & 0x3ff];
  switch_to(2);
  *code_pte &= ~PTE_P;
  invlpg(CODE);
  struct caught_trap t;
  check_trap("the fetch faults", code_fetch, (const void*)CODE, code_fetch_next, 14, &t);
  check_eq("error code (not present, read)", t.frame.error, 0);
  check_eq("cr2", t.cr2, CODE);
  switch_to(0);
  check_eq("space 0 still runs its own routine", call(CODE), want_code[0]);
  switch_to(2);
  *code_pte |= PTE_P;
  invlpg(CODE);
  check_eq("present again, space 2 runs its routine", call(CODE), want_code[2]);

  kprintf("space 0's tail page remapped\n");
  switch_to(0);
  space_tables[0][(TAIL_PAGE >> 12) & 0x3ff] = (uint32_t)tail_frames[SPACES] | PTE_P | PTE_W;
  invlpg(TAIL_PAGE);
  want_split[0] = SPLIT_RESULT(0x4f, 9);
  check_eq("space 0 runs the new end of the page-crossing routine", call(SPLIT_CODE),
           want_split[0]);
  switch_to(1);
  check_eq("space 1 still runs its own end", call(SPLIT_CODE), want_split[1]);
  switch_to(0);
  round_robin(300);
}

/* How many spaces read something other than want at word 5 of the
 * global page. */
static uint32_t spaces_misreading_global(uint32_t want) {
  uint32_t wrong = 0;
  for (uint32_t s = 0; s < SPACES; ++s) {
    switch_to(s);
    if (*linear_word(GLOBAL_PAGE + 4 * 5) != want) ++wrong;
  }
  switch_to(0);
  return wrong;
}

static void global_pages(void) {
  kprintf("global pages\n");
  write_cr4(read_cr4() | CR4_PGE);
  check("CR4.PGE is set", (read_cr4() & CR4_PGE) != 0);
  for (uint32_t a = 0; a < 0x00400000; a += PAGE_SIZE) *paging_pte(a) |= PTE_G;
  switch_to(0);
  kprintf("kernel pages global\n");
  round_robin(300);

  check_eq("spaces misreading the global page", spaces_misreading_global(0x6000005), 0);
  for (uint32_t s = 0; s < SPACES; ++s) {
    switch_to(s);
    *linear_word(GLOBAL_PAGE + 4 * (6 + s)) = 0x77770000u | s;
  }
  switch_to(0);
  check("each space's write through the global page reached its frame",
        global_frames[0][6] == 0x77770000 && global_frames[0][7] == 0x77770001 &&
            global_frames[0][8] == 0x77770002);

  global_table[0] = (uint32_t)global_frames[1] | PTE_P | PTE_W | PTE_G;
  invlpg(GLOBAL_PAGE);
  check_eq("global PTE changed, invlpg: spaces misreading the new frame",
           spaces_misreading_global(0xc000005), 0);

  global_table[0] = (uint32_t)global_frames[0] | PTE_P | PTE_W | PTE_G;
  write_cr4(read_cr4() & ~CR4_PGE);
  write_cr4(read_cr4() | CR4_PGE);
  check_eq("global PTE changed, CR4.PGE toggled: spaces misreading the new frame",
           spaces_misreading_global(0x6000005), 0);
}

void guest_main(uint32_t magic, const struct multiboot_info* mbi) {
  (void)magic;
  (void)mbi;
  build_spaces();
  paging_enable();
  switch_to(0);
  kprintf("three address spaces\n");
  for (uint32_t s = 0; s < SPACES; ++s) {
    switch_to(s);
    kprintf("space %u: routine %08x, shared routine %08x, page-crossing routine %08x, data %08x\n",
            s, call(CODE), call(SHARED_CODE), call(SPLIT_CODE), *linear_word(DATA));
  }
  switch_to(0);
  round_robin(999);
  remap_one_space();
  switch_from_space_code();
  code_changes();
  global_pages();
  guest_finish("spaces");
}
