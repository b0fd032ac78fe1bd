/* Multiboot v1 header, entry point, descriptor-table loading and the
 * interrupt stubs of the test-guest runtime.
 *
 * Every stub leaves the same frame (struct int_frame in guest.h): vectors
 * without a CPU error code push a zero so the layout never varies, then the
 * vector, the general registers (pusha) and the data segment registers.
 * The common path loads the kernel data segments before calling C (a trap
 * from CPL 3 arrives with user DS/ES) and restores everything on the way
 * out, so a handler resumes the interrupted code by editing the frame. */

#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003 /* page-aligned modules, memory information */

  .section .multiboot, "a"
  .align 4
  .long MB_MAGIC
  .long MB_FLAGS
  .long -(MB_MAGIC + MB_FLAGS)

  .section .bss
  .align 16
boot_stack:
  .skip 16384
boot_stack_top:

  .text
  .globl _start
_start:
  cli
  cld
  mov $boot_stack_top, %esp
  sub $8, %esp /* the i386 ABI wants ESP 16-byte aligned at each call */
  push %ebx /* multiboot info */
  push %eax /* multiboot magic */
  call runtime_start
1:
  hlt
  jmp 1b

/* void gdt_load(const struct table_pointer*): lgdt, then reload every
 * segment register so none keeps a descriptor cached from the loader. */
  .globl gdt_load
gdt_load:
  mov 4(%esp), %eax
  lgdt (%eax)
  mov $0x10, %ax
  mov %ax, %ds
  mov %ax, %es
  mov %ax, %fs
  mov %ax, %gs
  mov %ax, %ss
  ljmp $0x08, $1f
1:
  ret

.macro stub_no_error vector
  .globl isr_stub_\vector
isr_stub_\vector:
  push $0
  push $\vector
  jmp isr_common
.endm

.macro stub_cpu_error vector
  .globl isr_stub_\vector
isr_stub_\vector:
  push $\vector
  jmp isr_common
.endm

/* The CPU pushes an error code for #DF, #TS, #NP, #SS, #GP, #PF, #AC, #CP
 * (vectors 8, 10-14, 17, 21). */
.irp v, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,29,30,31
  stub_no_error \v
.endr
.irp v, 8,10,11,12,13,14,17,21
  stub_cpu_error \v
.endr
.irp v, 32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,128
  stub_no_error \v
.endr

isr_common:
  pusha
  push %ds
  push %es
  push %fs
  push %gs
  mov $0x10, %ax
  mov %ax, %ds
  mov %ax, %es
  mov %ax, %fs
  mov %ax, %gs
  push %esp
  call trap_dispatch
  add $4, %esp
  pop %gs
  pop %fs
  pop %es
  pop %ds
  popa
  add $8, %esp /* vector and error code */
  iret

  .section .rodata
  .align 4
  .globl isr_stub_table
/* Stub addresses for vectors 0-47, then vector 0x80. */
isr_stub_table:
.irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23
  .long isr_stub_\v
.endr
.irp v, 24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47
  .long isr_stub_\v
.endr
  .long isr_stub_128
  .section .note.GNU-stack, "", @progbits
