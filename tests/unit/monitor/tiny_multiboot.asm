; The smallest useful Multiboot kernel: a flat binary using the header's
; address fields. It prints "ok" on COM1 and exits through isa-debug-exit
; with value 0 (process status 1). The CLI tests use it as a valid kernel.
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
  mov dx, 0x3F8
  mov al, 'o'
  out dx, al
  mov al, 'k'
  out dx, al
  mov al, 10
  out dx, al
  mov al, 0
  out 0xF4, al
.hang:
  hlt
  jmp .hang
