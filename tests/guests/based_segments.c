/* based_segments: DS, ES, SS, FS and GS with non-zero bases, which bt86's
 * BT backend compensates for in translated code: loads, stores and
 * read-modify-write through a based DS (also moffs, an AH destination, xlat
 * and cmpxchg8b), string instructions between a based DS and a based ES,
 * a based stack for push, pop, call, ret, pushf/popf and enter/leave, and
 * FS and GS based at the same time (only one of them can be routed through
 * the host's FS). Not tested: segment limits and read-only data segments,
 * which QEMU TCG (the oracle) does not check on data accesses; bt86's unit
 * tests check them against the host CPU instead. */
#include "tests/guests/lib/guest.h"
#include "tests/guests/lib/x86.h"

#define SEL_A 0x30  // GDT entry 6
#define SEL_B 0x38  // GDT entry 7

static volatile uint32_t area_a[64];
static volatile uint32_t area_b[64];
static volatile uint32_t stack_area[64];

static uint32_t ds_read(uint32_t offset) {
  uint32_t v;
  __asm__ volatile("push %%ds; mov %w2, %%ds; mov (%1), %0; pop %%ds"
                   : "=r"(v)
                   : "r"(offset), "r"(SEL_A)
                   : "memory");
  return v;
}

static void ds_write(uint32_t offset, uint32_t v) {
  __asm__ volatile("push %%ds; mov %w2, %%ds; mov %1, (%0); pop %%ds" ::"r"(offset), "r"(v),
                   "r"(SEL_A)
                   : "memory");
}

static void ds_add(uint32_t offset, uint32_t v) {
  __asm__ volatile("push %%ds; mov %w2, %%ds; add %1, (%0); pop %%ds" ::"r"(offset), "r"(v),
                   "r"(SEL_A)
                   : "memory", "cc");
}

static uint32_t ds_moffs_read(void) {
  uint32_t v;
  __asm__ volatile("push %%ds; mov %w1, %%ds; movl 0x10, %%eax; pop %%ds"
                   : "=a"(v)
                   : "r"(SEL_A)
                   : "memory");
  return v;
}

// AH <- DS:[offset], AL kept.
static uint32_t ds_read_ah(uint32_t offset) {
  uint32_t eax = 0x5a;
  __asm__ volatile("push %%ds; mov %w2, %%ds; movb (%1), %%ah; pop %%ds"
                   : "+a"(eax)
                   : "b"(offset), "r"(SEL_A)
                   : "memory");
  return eax;
}

static uint32_t ds_xlat(uint32_t table, uint32_t index) {
  uint32_t eax = index;
  __asm__ volatile("push %%ds; mov %w2, %%ds; xlat; pop %%ds"
                   : "+a"(eax)
                   : "b"(table), "r"(SEL_A)
                   : "memory");
  return eax & 0xff;
}

// cmpxchg8b DS:[offset] with EDX:EAX = expected, ECX:EBX = replacement;
// returns ZF.
static uint32_t ds_cmpxchg8b(uint32_t offset, uint64_t expected, uint64_t replacement) {
  uint32_t lo = (uint32_t)expected, hi = (uint32_t)(expected >> 32);
  uint8_t zf;
  __asm__ volatile("push %%ds; mov %w6, %%ds; cmpxchg8b (%5); setz %2; pop %%ds"
                   : "+a"(lo), "+d"(hi), "=qm"(zf)
                   : "b"((uint32_t)replacement), "c"((uint32_t)(replacement >> 32)),
                     "S"(offset), "r"(SEL_A)
                   : "memory", "cc");
  return zf;
}

// With DS = SEL_A and ES = SEL_B: the string instruction in insn, from
// DS:ESI to ES:EDI, ECX elements; returns ECX after it and sets *zf.
#define STRING_OP(name, insn)                                                              \
  static uint32_t name(uint32_t esi, uint32_t edi, uint32_t ecx, uint32_t eax, uint8_t* zf) { \
    __asm__ volatile("push %%ds; push %%es; mov %w5, %%ds; mov %w6, %%es; " insn             \
                     "; setz %4; pop %%es; pop %%ds"                                         \
                     : "+S"(esi), "+D"(edi), "+c"(ecx), "+a"(eax), "=q"(*zf)                 \
                     : "r"(SEL_A), "r"(SEL_B)                                                \
                     : "memory", "cc");                                                      \
    return ecx;                                                                              \
  }
STRING_OP(rep_movsb, "rep movsb")
STRING_OP(rep_stosl, "rep stosl")
STRING_OP(repe_cmpsb, "repe cmpsb")
STRING_OP(lodsl, "lodsl; mov %%eax, %%ecx")

/* On a stack in SEL_B (then based at stack_area) at offset 0xF0: push an argument,
 * call a routine that reads and rewrites it through EBP (SS by default),
 * runs pushf/popf and enter/leave, and returns; the argument comes back
 * by pop. Returns it; the flat stack is restored. */
__asm__(
    ".text\n"
    "based_stack_call:\n"
    "  push %ebp\n"
    "  push %ebx\n"
    "  mov %esp, %ebx\n"
    "  mov %ss, %dx\n"
    "  mov $0x38, %ax\n"
    "  mov %ax, %ss\n"
    "  mov $0xF0, %esp\n"
    "  push $0x1234\n"
    "  call 1f\n"
    "  pop %eax\n"
    "  mov %dx, %ss\n"
    "  mov %ebx, %esp\n"
    "  pop %ebx\n"
    "  pop %ebp\n"
    "  ret\n"
    "1:\n"
    "  enter $8, $0\n"
    "  mov 8(%ebp), %ecx\n"
    "  add $0x1111, %ecx\n"
    "  mov %ecx, -4(%ebp)\n"
    "  pushf\n"
    "  popf\n"
    "  mov -4(%ebp), %ecx\n"
    "  mov %ecx, 8(%ebp)\n"
    "  leave\n"
    "  ret\n");
uint32_t based_stack_call(void);

static uint32_t seg_read(uint32_t offset, int gs) {
  uint32_t v;
  if (gs) {
    __asm__ volatile("mov %%gs:(%1), %0" : "=r"(v) : "r"(offset) : "memory");
  } else {
    __asm__ volatile("mov %%fs:(%1), %0" : "=r"(v) : "r"(offset) : "memory");
  }
  return v;
}

static void load_fs_gs(uint16_t fs, uint16_t gs) {
  __asm__ volatile("mov %0, %%fs; mov %1, %%gs" ::"r"(fs), "r"(gs) : "memory");
}

void guest_main(uint32_t magic, const struct multiboot_info* mbi) {
  (void)magic;
  (void)mbi;
  for (uint32_t i = 0; i < 64; ++i) {
    area_a[i] = 0xa0000000u | i;
    area_b[i] = 0xb0000000u | i;
    stack_area[i] = 0;
  }
  gdt_set_segment(6, (uint32_t)area_a, 0xFFFFF, 0x92, 0x4);
  gdt_set_segment(7, (uint32_t)area_b, 0xFFFFF, 0x92, 0x4);

  kprintf("DS with a base\n");
  check_eq("load", ds_read(8), 0xa0000002);
  ds_write(12, 0x600d);
  check_eq("store lands at base + 12", area_a[3], 0x600d);
  ds_add(12, 5);
  check_eq("read-modify-write", area_a[3], 0x6012);
  check_eq("moffs load", ds_moffs_read(), 0xa0000004);
  check_eq("AH destination", ds_read_ah(20), 0x055a);
  area_a[6] = 0x44332211;
  check_eq("xlat", ds_xlat(24, 2), 0x33);
  area_a[8] = 1;
  area_a[9] = 2;
  check_eq("cmpxchg8b equal", ds_cmpxchg8b(32, 0x200000001ull, 0x400000003ull), 1);
  check_eq("cmpxchg8b stored low", area_a[8], 3);
  check_eq("cmpxchg8b stored high", area_a[9], 4);
  check_eq("cmpxchg8b unequal", ds_cmpxchg8b(32, 0x200000001ull, 0), 0);

  kprintf("string instructions between DS and ES with bases\n");
  uint8_t zf = 0;
  check_eq("rep movsb ends with ECX 0", rep_movsb(0, 64, 16, 0, &zf), 0);
  check_eq("copied dword 0", area_b[16], 0xa0000000);
  check_eq("copied dword 3", area_b[19], 0x6012);
  check_eq("rep stosl ends with ECX 0", rep_stosl(0, 128, 4, 0x51515151, &zf), 0);
  check_eq("stored dword 32", area_b[32], 0x51515151);
  check_eq("stored dword 35", area_b[35], 0x51515151);
  check_eq("dword 36 untouched", area_b[36], 0xb0000024);
  check_eq("repe cmpsb stops after the first difference", repe_cmpsb(0, 64, 32, 0, &zf), 15);
  check_eq("repe cmpsb ZF clear", zf, 0);
  check_eq("lodsl through DS", lodsl(16, 0, 0, 0, &zf), 0xa0000004);

  kprintf("SS with a base\n");
  gdt_set_segment(7, (uint32_t)stack_area, 0xFFFFF, 0x92, 0x4);
  check_eq("argument through push, [ebp+8] and pop", based_stack_call(), 0x2345);
  check_eq("the argument slot is at base + 0xEC", stack_area[0xEC / 4], 0x2345);
  check_eq("the return address is at base + 0xE8", stack_area[0xE8 / 4] != 0, 1);

  kprintf("FS and GS both with bases\n");
  gdt_set_segment(7, (uint32_t)area_b, 0xFFFFF, 0x92, 0x4);
  uint16_t old_fs, old_gs;
  __asm__ volatile("mov %%fs, %0; mov %%gs, %1" : "=r"(old_fs), "=r"(old_gs));
  load_fs_gs(SEL_A, SEL_B);
  uint32_t fs_ok = 0, gs_ok = 0;
  for (uint32_t i = 0; i < 16; ++i) {
    fs_ok += seg_read(4 * (i + 40), 0) == (0xa0000000u | (i + 40));
    gs_ok += seg_read(4 * (i + 40), 1) == (0xb0000000u | (i + 40));
  }
  load_fs_gs(old_fs, old_gs);
  check_eq("FS reads through its base", fs_ok, 16);
  check_eq("GS reads through its base", gs_ok, 16);
  guest_finish("based_segments");
}
