/* smc: self-modifying code, which a binary translator must notice (bt86
 * write-protects pages holding translated code and drops the stale
 * translations on a write). Checks that a routine patched between calls
 * returns the new value, many times over (the path bt86 adapts after
 * repeated trace faults); that a store to the very next instruction of the
 * running block takes effect, as x86 guarantees; and that ordinary data
 * stores next to code on the same page leave the code working. */
#include "tests/guests/lib/guest.h"

#define PATCH_ROUNDS 200

/* patched_routine: mov $imm32, %eax; ret (imm32 at byte 1). */
static uint8_t code_page[4096] __attribute__((aligned(4096))) = {0xB8, 0, 0, 0, 0, 0xC3};

__asm__(
    ".text\n"
    /* Stores 0x600d into the immediate of the mov just after the store,
       then runs that mov: the result must be the new immediate. */
    "patch_next_instruction: movl $0x600d, next_mov + 1\n"
    "next_mov: mov $0xbad, %eax\n"
    "  ret\n"
    /* Restores the immediate so the routine can run again. */
    "reset_next_instruction: movl $0xbad, next_mov + 1; ret\n"
    /* A counter that lives next to code on the same page. */
    ".align 64\n"
    "increment_neighbour: incl neighbour_word; mov neighbour_word, %eax; ret\n"
    "neighbour_word: .long 0\n");
uint32_t patch_next_instruction(void);
void reset_next_instruction(void);
uint32_t increment_neighbour(void);

static uint32_t call_patched(void) {
  return ((uint32_t(*)(void))code_page)();
}

static void set_immediate(uint32_t v) {
  volatile uint8_t* p = code_page + 1;
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

void guest_main(uint32_t magic, const struct multiboot_info* mbi) {
  (void)magic;
  (void)mbi;
  kprintf("patching a routine between calls\n");
  set_immediate(0x11111111);
  check_eq("first version", call_patched(), 0x11111111);
  set_immediate(0x22222222);
  check_eq("patched once", call_patched(), 0x22222222);
  uint32_t wrong = 0;
  for (uint32_t i = 0; i < PATCH_ROUNDS; ++i) {
    set_immediate(0x1000 + i);
    if (call_patched() != 0x1000 + i) ++wrong;
  }
  check_eq("200 patch-and-call rounds, wrong results", wrong, 0);

  kprintf("patching the next instruction\n");
  check_eq("the store to the next instruction takes effect", patch_next_instruction(), 0x600d);
  reset_next_instruction();
  check_eq("and again after resetting it", patch_next_instruction(), 0x600d);

  kprintf("data next to code\n");
  uint32_t last = 0;
  for (uint32_t i = 0; i < 100; ++i) last = increment_neighbour();
  check_eq("counter beside the code", last, 100);
  guest_finish("smc");
}
