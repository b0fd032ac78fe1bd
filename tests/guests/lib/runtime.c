/* Test-guest runtime: descriptor tables, trap dispatch, checks and exit.
 *
 * A guest is a single-threaded kernel with one CPU, so the runtime's
 * bookkeeping (the tables the CPU reads, the failure count, the one armed
 * trap expectation) is plain file-scope state: the hardware tables must
 * live at fixed addresses anyway, and there is no second caller to race.
 * Nothing here allocates; everything is sized at build time. */
#include "tests/guests/lib/guest.h"

#include <stddef.h>

#include "tests/guests/lib/x86.h"

#define IDT_STUB_COUNT 49 /* vectors 0-47 and 0x80 */

struct table_pointer {
  uint16_t limit;
  uint32_t base;
} __attribute__((packed));

struct tss32 {
  uint32_t link, esp0, ss0, esp1, ss1, esp2, ss2, cr3, eip, eflags;
  uint32_t eax, ecx, edx, ebx, esp, ebp, esi, edi;
  uint32_t es, cs, ss, ds, fs, gs, ldt;
  uint16_t trap, iomap_base;
} __attribute__((packed));

extern void gdt_load(const struct table_pointer* ptr);
extern const uint32_t isr_stub_table[IDT_STUB_COUNT];
void runtime_start(uint32_t magic, const struct multiboot_info* mbi);
void trap_dispatch(struct int_frame* frame);
void serial_init(void);

static uint64_t gdt[8];  // entries 6 and 7 are the guests' (gdt_set_segment)
static uint64_t idt[256];
static struct tss32 tss;
static uint8_t ring0_stack[8192] __attribute__((aligned(16)));

static uint32_t failed_checks;

static struct {
  bool armed;
  const void* resume_eip;
  struct caught_trap* out;
  bool caught;
} expectation;

static uint64_t segment_descriptor(uint32_t base, uint32_t limit, uint8_t access, uint8_t flags) {
  return (uint64_t)(limit & 0xFFFF) | (uint64_t)(base & 0xFFFFFF) << 16 | (uint64_t)access << 40 |
         (uint64_t)((limit >> 16) & 0xF) << 48 | (uint64_t)(flags & 0xF) << 52 |
         (uint64_t)(base >> 24) << 56;
}

static void descriptor_tables_init(void) {
  gdt[0] = 0;
  gdt[1] = segment_descriptor(0, 0xFFFFF, 0x9A, 0xC);  // ring-0 code, 4 GiB, 32-bit
  gdt[2] = segment_descriptor(0, 0xFFFFF, 0x92, 0xC);  // ring-0 data
  gdt[3] = segment_descriptor(0, 0xFFFFF, 0xFA, 0xC);  // ring-3 code
  gdt[4] = segment_descriptor(0, 0xFFFFF, 0xF2, 0xC);  // ring-3 data
  gdt[5] = segment_descriptor((uint32_t)&tss, sizeof(tss) - 1, 0x89, 0x0);  // available TSS

  tss.ss0 = SEL_KERNEL_DATA;
  tss.esp0 = (uint32_t)(ring0_stack + sizeof(ring0_stack));
  tss.iomap_base = sizeof(tss);  // no I/O bitmap: CPL 3 port I/O faults

  struct table_pointer gdtr = {sizeof(gdt) - 1, (uint32_t)gdt};
  gdt_load(&gdtr);
  __asm__ volatile("ltr %w0" ::"r"(SEL_TSS));

  for (int i = 0; i < 48; ++i) idt_set_gate((uint8_t)i, 0);
  idt_set_gate(0x80, 0);
  struct table_pointer idtr = {sizeof(idt) - 1, (uint32_t)idt};
  __asm__ volatile("lidt %0" ::"m"(idtr));
}

void idt_set_gate(uint8_t vector, uint8_t dpl) {
  int slot = vector < 48 ? vector : vector == 0x80 ? 48 : -1;
  if (slot < 0) {
    kprintf("FAIL runtime: no interrupt stub for vector %u\n", vector);
    guest_exit(1);
  }
  uint32_t handler = isr_stub_table[slot];
  uint8_t type = 0x80 | (uint8_t)((dpl & 3) << 5) | 0xE;  // present 32-bit interrupt gate
  idt[vector] = (uint64_t)(handler & 0xFFFF) | (uint64_t)SEL_KERNEL_CODE << 16 |
                (uint64_t)type << 40 | (uint64_t)(handler >> 16) << 48;
}

uint32_t tss_esp0(void) {
  return tss.esp0;
}

void tss_set_stack0(uint16_t ss0, uint32_t esp0) {
  tss.ss0 = ss0;
  tss.esp0 = esp0;
}

void gdt_set_segment(uint32_t index, uint32_t base, uint32_t limit, uint8_t access, uint8_t flags) {
  if (index < 6 || index >= sizeof(gdt) / sizeof(gdt[0])) {
    kprintf("FAIL runtime: GDT entry %u is not a guest entry\n", index);
    guest_exit(1);
  }
  gdt[index] = segment_descriptor(base, limit, access, flags);
}

void runtime_start(uint32_t magic, const struct multiboot_info* mbi) {
  serial_init();
  descriptor_tables_init();
  guest_main(magic, mbi);
  kprintf("FAIL runtime: guest_main returned without guest_finish\n");
  guest_exit(1);
}

__attribute__((weak)) bool guest_trap(struct int_frame* frame) {
  (void)frame;
  return false;
}

void trap_dispatch(struct int_frame* frame) {
  if (frame->vector < 32 && expectation.armed) {
    expectation.armed = false;
    expectation.caught = true;
    // user_esp and user_ss exist only when the trap came from CPL 3: a CPL 0
    // frame ends at eflags, possibly at the end of a mapped page.
    const bool from_user = (frame->cs & 3) != 0;
    const uint32_t size = from_user ? sizeof *frame : offsetof(struct int_frame, user_esp);
    expectation.out->frame = (struct int_frame){0};
    __builtin_memcpy(&expectation.out->frame, frame, size);
    expectation.out->cr2 = read_cr2();
    frame->eip = (uint32_t)expectation.resume_eip;
    return;
  }
  if (guest_trap(frame)) return;
  kprintf("FAIL unexpected trap: vector %u error %x eip %08x cs %x cr2 %08x\n", frame->vector,
          frame->error, frame->eip, frame->cs & 0xFFFF, read_cr2());
  guest_exit(1);
}

bool trap_catch(void (*trigger)(void), const void* resume_eip, struct caught_trap* out) {
  expectation.resume_eip = resume_eip;
  expectation.out = out;
  expectation.caught = false;
  expectation.armed = true;
  trigger();
  expectation.armed = false;
  return expectation.caught;
}

bool check_trap(const char* what, void (*trigger)(void), const void* insn, const void* resume_eip,
                uint32_t vector, struct caught_trap* out) {
  const bool caught = check(what, trap_catch(trigger, resume_eip, out));
  if (!caught) *out = (struct caught_trap){0};
  check_eq("vector", out->frame.vector, vector);
  check_eq("saved eip", out->frame.eip, (uint32_t)insn);
  return caught;
}

bool check(const char* what, bool ok) {
  if (ok) {
    kprintf("ok   %s\n", what);
  } else {
    kprintf("FAIL %s\n", what);
    ++failed_checks;
  }
  return ok;
}

bool check_eq(const char* what, uint32_t got, uint32_t want) {
  if (got == want) {
    kprintf("ok   %s\n", what);
    return true;
  }
  kprintf("FAIL %s: got %x want %x\n", what, got, want);
  ++failed_checks;
  return false;
}

void guest_finish(const char* name) {
  if (failed_checks == 0) {
    kprintf("PASS %s\n", name);
    guest_exit(0);
  }
  kprintf("FAIL %s (%u failed checks)\n", name, failed_checks);
  guest_exit(1);
}

void guest_exit(uint32_t status) {
  outl(0xf4, status);
  cli();
  for (;;) __asm__ volatile("hlt");
}
