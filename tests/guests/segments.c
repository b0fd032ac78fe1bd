/* segments: non-flat segments, which bt86 compensates for in translated
 * code. A GDT entry with a non-zero base in FS relocates reads and writes;
 * lsl/lar report the descriptor; a segment register keeps its cached
 * descriptor when the GDT entry changes in memory, until it is reloaded
 * (bt86 shadows descriptor tables and must not leak the change), while a
 * reload of the same selector does see it; loading a
 * read-only segment into SS raises #GP(sel) and a not-present one #NP(sel);
 * verw answers from the descriptor as it is in memory now, each time (bt86
 * answers repeated ones without a callout and must see the GDT change);
 * FS switched back and forth, by mov and pop, reads through the right base.
 * Not tested: data accesses past a segment limit and writes through a
 * read-only segment, which QEMU TCG (the oracle) does not check. */
#include "tests/guests/lib/guest.h"
#include "tests/guests/lib/x86.h"

#define SEL_WINDOW 0x30     // GDT entry 6
#define SEL_READ_ONLY 0x38  // GDT entry 7
#define WINDOW_LIMIT 0xFF

static volatile uint32_t buffer[256];

__asm__(
    ".text\n"
    "read_only_into_ss: mov $0x38, %eax\n"
    "ss_insn: mov %ax, %ss\n"
    "ss_next: ret\n"
    "not_present_into_fs: mov $0x38, %eax\n"
    "np_insn: mov %ax, %fs\n"
    "np_next: ret\n");
void read_only_into_ss(void);
void not_present_into_fs(void);
extern const char ss_insn[], ss_next[], np_insn[], np_next[];

static void load_fs(uint16_t sel) {
  __asm__ volatile("mov %0, %%fs" ::"r"(sel) : "memory");
}
static void pop_fs(uint16_t sel) {
  __asm__ volatile("push %0; pop %%fs" ::"r"((uint32_t)sel) : "memory");
}
static void load_gs(uint16_t sel) {
  __asm__ volatile("mov %0, %%gs" ::"r"(sel) : "memory");
}
static uint32_t gs_read(uint32_t offset) {
  uint32_t v;
  __asm__ volatile("mov %%gs:(%1), %0" : "=r"(v) : "r"(offset) : "memory");
  return v;
}
static uint32_t fs_read(uint32_t offset) {
  uint32_t v;
  __asm__ volatile("mov %%fs:(%1), %0" : "=r"(v) : "r"(offset) : "memory");
  return v;
}
static void fs_write(uint32_t offset, uint32_t v) {
  __asm__ volatile("mov %1, %%fs:(%0)" ::"r"(offset), "r"(v) : "memory");
}

// How many of n verw of sel (a memory operand, as Linux uses) set ZF.
static uint32_t verw_count(uint16_t sel, uint32_t n) {
  static volatile uint16_t operand;
  operand = sel;
  uint32_t set = 0;
  for (uint32_t i = 0; i < n; ++i) {
    uint8_t zf;
    uint32_t ecx = 0x600d0000u + i;  // bt86's in-cache verw borrows RCX: it must survive.
    __asm__ volatile("verw %2; setz %0" : "=q"(zf), "+c"(ecx) : "m"(operand) : "cc", "memory");
    if (ecx != 0x600d0000u + i) return 0xbad;
    set += zf;
  }
  return set;
}

static void expect_fault(const char* what, void (*raise)(void), const char* insn, const char* next,
                         uint32_t vector, uint32_t error) {
  struct caught_trap t;
  if (!check(what, trap_catch(raise, next, &t))) t = (struct caught_trap){0};
  check_eq("vector", t.frame.vector, vector);
  check_eq("error code", t.frame.error, error);
  check_eq("saved eip", t.frame.eip, (uint32_t)insn);
}

void guest_main(uint32_t magic, const struct multiboot_info* mbi) {
  (void)magic;
  (void)mbi;
  for (uint32_t i = 0; i < 256; ++i) buffer[i] = 0x5e000000u | i;
  uint32_t base = (uint32_t)&buffer[16];
  gdt_set_segment(6, base, WINDOW_LIMIT, 0x92, 0x4);
  gdt_set_segment(7, base, WINDOW_LIMIT, 0x90, 0x4);

  kprintf("segment with base and limit in FS\n");
  load_fs(SEL_WINDOW);
  check_eq("read at offset 8 is relocated by the base", fs_read(8), 0x5e000012);
  check_eq("read at the last full dword", fs_read(0xFC), 0x5e00004f);
  fs_write(4, 0xabcdef01);
  check_eq("write lands at base + 4", buffer[17], 0xabcdef01);
  kprintf("lsl and lar\n");
  uint32_t limit = 0, rights = 0;
  uint8_t lsl_ok = 0, lar_ok = 0;
  __asm__ volatile("lsl %2, %0; setz %1" : "=r"(limit), "=q"(lsl_ok) : "r"((uint32_t)SEL_WINDOW));
  __asm__ volatile("lar %2, %0; setz %1" : "=r"(rights), "=q"(lar_ok) : "r"((uint32_t)SEL_WINDOW));
  check("lsl sets ZF", lsl_ok);
  check_eq("lsl gives the limit", limit, WINDOW_LIMIT);
  check("lar sets ZF", lar_ok);
  check_eq("lar gives the access rights", rights & 0x00F0FF00, 0x00409300);

  kprintf("descriptor cache\n");
  gdt_set_segment(6, base + 0x40, WINDOW_LIMIT, 0x92, 0x4);
  check_eq("FS keeps its cached base after the GDT write", fs_read(0), 0x5e000010);
  load_fs(SEL_WINDOW);
  check_eq("after the reload FS uses the new base", fs_read(0), 0x5e000020);

  /* bt86 skips reloads that cannot change anything; these can. */
  kprintf("reloading the selector FS holds\n");
  load_fs(SEL_WINDOW);
  check_eq("a reload of an unchanged descriptor keeps the base", fs_read(0), 0x5e000020);
  gdt_set_segment(6, base + 0x80, WINDOW_LIMIT, 0x92, 0x4);
  load_fs(SEL_WINDOW);
  check_eq("a reload after a GDT write takes the new base", fs_read(0), 0x5e000030);
  load_fs(SEL_KERNEL_DATA);

  kprintf("verw\n");
  check_eq("verw of a writable data segment, three times", verw_count(SEL_WINDOW, 3), 3);
  gdt_set_segment(6, base, WINDOW_LIMIT, 0x90, 0x4);  // now read-only
  check_eq("verw after the GDT write made it read-only", verw_count(SEL_WINDOW, 2), 0);
  gdt_set_segment(6, base, WINDOW_LIMIT, 0x92, 0x4);
  check_eq("verw after the GDT write made it writable again", verw_count(SEL_WINDOW, 2), 2);
  check_eq("verw of a read-only data segment", verw_count(SEL_READ_ONLY, 1), 0);

  /* Linux-like: FS alternates between a based selector and null while GS
   * has a base; bt86 switches between loads it has seen without a callout
   * and must see the GDT write halfway. Odd rounds use pop. */
  kprintf("switching FS between two selectors\n");
  uint16_t old_gs;
  __asm__ volatile("mov %%gs, %0" : "=r"(old_gs));
  gdt_set_segment(6, base, WINDOW_LIMIT, 0x92, 0x4);
  gdt_set_segment(7, base + 0x20, WINDOW_LIMIT, 0x92, 0x4);
  load_gs(SEL_READ_ONLY);
  uint32_t fs_ok = 0, gs_ok = 0;
  for (uint32_t i = 0; i < 8; ++i) {
    if (i == 4) {
      /* FS is null here: reloading it after the write makes it current
       * again, while the load of SEL_WINDOW seen before is stale. */
      gdt_set_segment(6, base + 0x40, WINDOW_LIMIT, 0x92, 0x4);
      load_fs(0);
    }
    if (i & 1) {
      pop_fs(SEL_WINDOW);
    } else {
      load_fs(SEL_WINDOW);
    }
    fs_ok += fs_read(0) == (i < 4 ? 0x5e000010u : 0x5e000020u);
    if (i & 1) {
      pop_fs(0);
    } else {
      load_fs(0);
    }
    gs_ok += gs_read(0) == 0x5e000018u;
  }
  check_eq("FS reads through the selector just loaded", fs_ok, 8);
  check_eq("GS reads through its own base while FS is null", gs_ok, 8);
  load_gs(old_gs);
  load_fs(SEL_KERNEL_DATA);
  gdt_set_segment(7, base, WINDOW_LIMIT, 0x90, 0x4);

  kprintf("segment loads that fault\n");
  expect_fault("read-only data segment into SS: #GP", read_only_into_ss, ss_insn, ss_next, 13,
               SEL_READ_ONLY);
  gdt_set_segment(7, base, WINDOW_LIMIT, 0x12, 0x4);  // present bit clear
  expect_fault("not-present segment into FS: #NP", not_present_into_fs, np_insn, np_next, 11,
               SEL_READ_ONLY);
  guest_finish("segments");
}
