/* The common runtime of the bt86 test guests: freestanding Multiboot v1
 * kernels that each test one feature of the virtual machine and report on
 * COM1, ending through the isa-debug-exit port.
 *
 * Invariants the runtime establishes before guest_main runs:
 *   - its own GDT: flat ring-0 code/data, flat ring-3 code/data, one TSS
 *     (SS0:ESP0 = a dedicated ring-0 stack, no I/O bitmap);
 *   - an IDT with interrupt gates (DPL 0) for vectors 0-47 and 0x80, all
 *     routed through one assembly stub to trap_dispatch with the full frame;
 *   - COM1 at 115200 8N1, written by polling LSR.THRE;
 *   - interrupts disabled, paging off.
 *
 * Result convention (see ../README.md): a guest writes 0 to port 0xf4 for
 * PASS and 1 for FAIL, so QEMU and bt86 exit with status 1 and 3. Every
 * guest prints "PASS <name>" or "FAIL <name>" as its last line.
 *
 * Usage:
 *   void guest_main(uint32_t magic, const struct multiboot_info* mbi) {
 *     check_eq("answer", compute(), 42);
 *     guest_finish("example");
 *   }
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "tests/guests/lib/multiboot.h"

#define SEL_KERNEL_CODE 0x08
#define SEL_KERNEL_DATA 0x10
#define SEL_USER_CODE 0x1b
#define SEL_USER_DATA 0x23
#define SEL_TSS 0x28

/* The frame the interrupt stubs build, lowest address first. user_esp and
 * user_ss exist only when the CPU switched stacks (trap from CPL 3). A
 * handler may change any field; the stub restores all of them and irets. */
struct int_frame {
  uint32_t gs, fs, es, ds;
  uint32_t edi, esi, ebp, esp_at_pusha, ebx, edx, ecx, eax;
  uint32_t vector, error;
  uint32_t eip, cs, eflags;
  uint32_t user_esp, user_ss;
};

/* Implemented by each guest. */
void guest_main(uint32_t magic, const struct multiboot_info* mbi);

/* Optional hook for interrupts and traps a guest handles itself (timer
 * IRQs, system calls). Returns true when it handled the event; otherwise
 * the runtime reports an unexpected trap and exits with FAIL. */
bool guest_trap(struct int_frame* frame);

/* Serial output. kprintf understands %s %c %d %u %x %08x (width and 0 flag
 * only for x, u, d). */
void serial_putc(char c);
void serial_write(const char* s, uint32_t len);
void kprintf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

/* Checks print "ok   <what>" or "FAIL <what>: got ... want ..." and count
 * failures for guest_finish. */
bool check(const char* what, bool ok);
bool check_eq(const char* what, uint32_t got, uint32_t want);

/* Prints "PASS <name>" when no check failed, else "FAIL <name> (n failed
 * checks)", and exits accordingly. */
__attribute__((noreturn)) void guest_finish(const char* name);
/* Writes status to the isa-debug-exit port; halts forever if the port does
 * nothing (the harness timeout then catches it). */
__attribute__((noreturn)) void guest_exit(uint32_t status);

/* A caught exception: the frame at the time of the trap plus CR2. */
struct caught_trap {
  struct int_frame frame;
  uint32_t cr2;
};

/* Calls trigger() with a one-shot expectation armed: if an exception
 * (vector < 32) happens before trigger returns, the runtime records it in
 * *out and resumes at resume_eip (usually the label just after the faulting
 * instruction). Returns whether a trap was caught. A second trap while the
 * first is being handled is not caught and fails the guest. */
bool trap_catch(void (*trigger)(void), const void* resume_eip, struct caught_trap* out);
/* trap_catch and the checks every expected fault starts with: "<what>"
 * (a trap was caught), "vector" and "saved eip" (insn, the faulting
 * instruction). When nothing was caught *out is zeroed, so checks of its
 * other fields fail too. Returns whether a trap was caught. */
bool check_trap(const char* what, void (*trigger)(void), const void* insn, const void* resume_eip,
                uint32_t vector, struct caught_trap* out);

/* Descriptor-table control the guests need. */
void idt_set_gate(uint8_t vector, uint8_t dpl);
uint32_t tss_esp0(void);
/* Sets the TSS's SS0:ESP0, the stack the CPU loads on a trap from CPL 3.
 * The CPU reads the TSS at each such trap, so the next one uses it. */
void tss_set_stack0(uint16_t ss0, uint32_t esp0);
/* GDT entries 6 and 7 (selectors 0x30, 0x38) are free for guests; they
 * start zero (loading them faults). access/flags as in the descriptor:
 * e.g. 0x92 read/write data, 0x90 read-only data; flags 0x4 = 32-bit,
 * byte granularity. Reload a segment register to use a change. */
void gdt_set_segment(uint32_t index, uint32_t base, uint32_t limit, uint8_t access, uint8_t flags);

/* 8259A pair remapped to base, base+8, all lines masked; then unmask. */
void pic_init(uint8_t base);
void pic_unmask(uint8_t irq);
void pic_mask(uint8_t irq);
void pic_eoi(uint8_t irq);
uint8_t pic_read_isr_master(void);
/* PIT channel 0, mode 2 (rate generator), at about hz interrupts/s. */
void pit_start_periodic(uint32_t hz);
/* Latches and reads channel 0's current count. */
uint16_t pit_read_count(void);
