/* string_ops: rep movs / rep stos, which kernels use for every memcpy and
 * memset and which bt86 keeps as host string instructions. Checks forward
 * and backward (DF=1) copies of bytes and dwords, then faults in the middle
 * of a rep: the destination runs into a not-present page, and the #PF must
 * leave ECX, ESI and EDI at the faulting element with every element before
 * it stored, so the instruction can restart (precise state mid-copy). */
#include "tests/guests/lib/guest.h"
#include "tests/guests/lib/paging.h"
#include "tests/guests/lib/x86.h"

#define BUFFER 0x00200000u       // two pages, identity mapped
#define NOT_PRESENT 0x00202000u  // the page right after them
#define SOURCE 0x00210000u

__asm__(
    ".text\n"
    /* rep_movsb(dst, src, count) and friends: cdecl, return ECX left. */
    "rep_movsb: push %esi; push %edi; mov 12(%esp), %edi; mov 16(%esp), %esi;"
    "  mov 20(%esp), %ecx; cld; rep movsb; mov %ecx, %eax; pop %edi; pop %esi; ret\n"
    "rep_movsl_backward: push %esi; push %edi; mov 12(%esp), %edi; mov 16(%esp), %esi;"
    "  mov 20(%esp), %ecx; std; rep movsl; cld; mov %ecx, %eax; pop %edi; pop %esi; ret\n"
    "rep_stosb: push %edi; mov 8(%esp), %edi; mov 12(%esp), %eax; mov 16(%esp), %ecx;"
    "  cld; rep stosb; mov %ecx, %eax; pop %edi; ret\n"
    /* Faulting copies: fixed registers so the frame can be checked. */
    "fault_movsb: push %esi; push %edi; mov $0x00201ff0, %edi; mov $0x00210000, %esi;"
    "  mov $0x40, %ecx; cld\n"
    "fault_movsb_insn: rep movsb\n"
    "fault_movsb_next: pop %edi; pop %esi; ret\n"
    "fault_stosl: push %edi; mov $0x00201f00, %edi; mov $0x5a5a5a5a, %eax; mov $0x100, %ecx; cld\n"
    "fault_stosl_insn: rep stosl\n"
    "fault_stosl_next: pop %edi; ret\n");
uint32_t rep_movsb(void* dst, const void* src, uint32_t count);
uint32_t rep_movsl_backward(void* dst_last, const void* src_last, uint32_t count);
uint32_t rep_stosb(void* dst, uint32_t value, uint32_t count);
void fault_movsb(void);
void fault_stosl(void);
extern const char fault_movsb_insn[], fault_movsb_next[], fault_stosl_insn[], fault_stosl_next[];

static volatile uint8_t* bytes(uint32_t a) {
  return (volatile uint8_t*)a;
}
static volatile uint32_t* dwords(uint32_t a) {
  return (volatile uint32_t*)a;
}

static bool range_is(uint32_t start, uint32_t len, uint8_t (*want)(uint32_t i)) {
  for (uint32_t i = 0; i < len; ++i) {
    if (*bytes(start + i) != want(i)) return false;
  }
  return true;
}
static uint8_t source_byte(uint32_t i) {
  return (uint8_t)(i * 7 + 1);
}
static uint8_t zero_byte(uint32_t i) {
  (void)i;
  return 0;
}
static uint8_t fill_byte(uint32_t i) {
  (void)i;
  return 0xC3;
}

void guest_main(uint32_t magic, const struct multiboot_info* mbi) {
  (void)magic;
  (void)mbi;
  for (uint32_t i = 0; i < 0x2000; ++i) *bytes(SOURCE + i) = source_byte(i);
  for (uint32_t i = 0; i < 0x2000; ++i) *bytes(BUFFER + i) = 0;

  kprintf("rep movsb forward\n");
  check_eq("ecx ends at 0", rep_movsb((void*)(BUFFER + 3), (void*)SOURCE, 0x1001), 0);
  check("bytes copied", range_is(BUFFER + 3, 0x1001, source_byte));
  check("bytes around untouched",
        range_is(BUFFER, 3, zero_byte) && range_is(BUFFER + 0x1004, 16, zero_byte));

  kprintf("rep movsl backward (DF=1)\n");
  for (uint32_t i = 0; i < 0x2000; ++i) *bytes(BUFFER + i) = 0;
  check_eq("ecx ends at 0",
           rep_movsl_backward((void*)(BUFFER + 0x100 + 4 * 63), (void*)(SOURCE + 4 * 63), 64), 0);
  check("dwords copied", range_is(BUFFER + 0x100, 256, source_byte));
  check("below the copy untouched", range_is(BUFFER + 0xF0, 16, zero_byte));
  check("DF clear again", (read_eflags() & (1u << 10)) == 0);

  kprintf("rep stosb\n");
  check_eq("ecx ends at 0", rep_stosb((void*)(BUFFER + 1), 0xC3, 0x1FFE), 0);
  check("bytes filled", range_is(BUFFER + 1, 0x1FFE, fill_byte));

  paging_identity_4k(0, 0x00400000, PTE_P | PTE_W);
  paging_map_4k(NOT_PRESENT, NOT_PRESENT, 0);
  paging_enable();
  for (uint32_t i = 0; i < 0x2000; ++i) *bytes(BUFFER + i) = 0;

  kprintf("rep movsb into a not-present page\n");
  struct caught_trap t;
  if (!check("page fault", trap_catch(fault_movsb, fault_movsb_next, &t))) {
    t = (struct caught_trap){0};
  }
  check_eq("vector", t.frame.vector, 14);
  check_eq("error code (not present, write)", t.frame.error, 2);
  check_eq("cr2 is the first byte of the missing page", t.cr2, NOT_PRESENT);
  check_eq("saved eip is the rep movsb", t.frame.eip, (uint32_t)fault_movsb_insn);
  check_eq("ecx counts the bytes left", t.frame.ecx, 0x30);
  check_eq("esi at the faulting element", t.frame.esi, SOURCE + 0x10);
  check_eq("edi at the faulting element", t.frame.edi, NOT_PRESENT);
  check("the 16 bytes before the page were copied", range_is(0x00201ff0, 16, source_byte));

  kprintf("rep stosl into a not-present page\n");
  if (!check("page fault", trap_catch(fault_stosl, fault_stosl_next, &t))) {
    t = (struct caught_trap){0};
  }
  check_eq("vector", t.frame.vector, 14);
  check_eq("error code (not present, write)", t.frame.error, 2);
  check_eq("cr2 is the first byte of the missing page", t.cr2, NOT_PRESENT);
  check_eq("saved eip is the rep stosl", t.frame.eip, (uint32_t)fault_stosl_insn);
  check_eq("ecx counts the dwords left", t.frame.ecx, 0x100 - 0x40);
  check_eq("edi at the faulting element", t.frame.edi, NOT_PRESENT);
  check_eq("first dword stored", *dwords(0x00201f00), 0x5a5a5a5a);
  check_eq("last dword before the page stored", *dwords(0x00201ffc), 0x5a5a5a5a);
  guest_finish("string_ops");
}
