; A Multiboot kernel that triple-faults on purpose: with an IDT of limit 0,
; a divide error cannot be delivered (#GP), nor can the #GP (#DF), nor the
; #DF: the CPU shuts down. (A divide rather than int3: kvm_pvm's emulator
; cannot execute int3 in protected mode.) bt86 --backend kvm must report a triple fault
; (exit status 8) with the guest position, never hang or crash.
bits 32
org 0x100000

header:
  dd 0x1BADB002
  dd 0x00010002                   ; memory info, address fields
  dd -(0x1BADB002 + 0x00010002)
  dd header                       ; header_addr
  dd 0x100000                     ; load_addr
  dd 0                            ; load_end_addr: the whole file
  dd 0                            ; bss_end_addr: no bss
  dd start                        ; entry_addr

start:
  lidt [empty_idt]
  xor ecx, ecx
  div ecx
  mov al, 1                       ; Not reached: a debug exit with "fail".
  out 0xF4, al
.hang:
  hlt
  jmp .hang

empty_idt:
  dw 0
  dd 0
