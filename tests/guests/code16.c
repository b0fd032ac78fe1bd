/* code16: 16-bit protected-mode code, a code segment whose descriptor has
 * D = 0. Instructions there default to 16-bit operands and 16-bit
 * addresses (0x66 and 0x67 select 32-bit ones), near branches and calls
 * work on IP, and an effective address wraps at 64 KiB. The stack stays
 * the flat 32-bit one (SS.B = 1), so push, pop, call and ret move ESP, not
 * SP, while pushing 16-bit values; exceptions go through the runtime's
 * 32-bit interrupt gates, whose iretd returns to the 16-bit segment.
 *
 * Checks, all at CPL 0, with CS = a 16-bit segment based C16_ORG below the
 * blob (limit 0xFFFF) and DS = ES = a data segment of limit 0xFFFF based at
 * data16:
 *   - entry by a far call from 32-bit code (it pushed a 32-bit CS:EIP, so
 *     the 16-bit code returns with lretl, 66 CB), a 16-bit far call and
 *     lretw inside the segment, a 32-bit far call (66 9A) out to flat
 *     32-bit code and its lret, a far jmp in from 32-bit code, a 16-bit far
 *     jmp (EA ptr16:16) reloading the same selector, a 32-bit one (66 EA)
 *     back to the flat segment;
 *   - add/adc/sub/sbb/inc/dec/neg, mul/imul/div/idiv, cwd, rol on 16-bit
 *     registers: results, flags (pushf), and the upper halves of the 32-bit
 *     registers untouched; 32-bit operations with 0x66 (movl $imm32, addl,
 *     mull, movzwl, movswl);
 *   - the 16-bit ModRM forms [bx+si], [bx+di], [si], [di], [bx+disp8],
 *     [bx+disp16], [disp16] (and moffs), [bp+si], [bp+di], [bp+disp8] (SS
 *     by default: the flat SS reaches linear memory below 64 KiB, where
 *     DS would reach data16) and segment overrides both ways; effective
 *     addresses wrapping at 64 KiB (0xFFF0 + 0x20 = 0x0010, 8 - 0x10 =
 *     0xFFF8); lea with 16- and 32-bit operand and address sizes; 0x67
 *     forms with a SIB byte, and through %ss: to a flat address above 1 MiB;
 *   - call rel16 and ret (a 2-byte IP on the stack), calll/retl (66: 4
 *     bytes), jmp rel8/rel16, jcc short and near, loop on CX (ECX's upper
 *     half kept) and addr32 loop on ECX, jcxz on CX and jecxz on ECX, call
 *     *%bx, jmp *%bx, jmp through a %cs: slot, ret $4;
 *   - push/pop of words and (0x66) dwords, push imm8/imm16/imm32, pusha and
 *     popa (16-bit: 16 bytes, SP as it was), pushf/popf (FLAGS only, bits
 *     16-31 of EFLAGS kept), pushfl, push of a segment register with 16-
 *     and 32-bit operand size: every one moves all of ESP;
 *   - rep movsb, rep stosw (DI wrapping from 0xFFFC to 0x0004) and repne
 *     scasb on CX/SI/DI with the upper halves of ECX/ESI/EDI kept; addr32
 *     rep movsb on ECX/ESI/EDI between flat buffers above 1 MiB;
 *   - #UD (ud2), #DE (divide by zero, and a quotient too big for 16 bits
 *     that would fit in 32), int3 and int $0x80 in 16-bit code: the 32-bit
 *     handler sees the 16-bit selector and the offset (of the faulting
 *     instruction, after the trapping one) as CS:EIP, and its iretd
 *     resumes the 16-bit code.
 *
 * Not tested: limits (QEMU TCG does not check data-segment limits, nor code
 * limits except on a far call; see README.md), a 16-bit stack segment
 * (SS.B = 0), enter/leave, and IP wrapping at 64 KiB. */
#include "tests/guests/lib/guest.h"
#include "tests/guests/lib/x86.h"

#define SEL_CODE16 0x30   // GDT entry 6: the 16-bit code segment
#define SEL_DATA16 0x38   // GDT entry 7: data segment based at data16
#define C16_ORG 0x0400    // the CS offset of the blob's first byte
#define OUT 0x1000        // data16 offset of the slots the routines save to
#define OUT_SLOTS 64      // dwords
#define TABLE 0x0200      // data16 offset of 256 words 0xa000 + i
#define FLAT_PTRS 0x0100  // data16 offset of three flat addresses
#define STR_SRC 0x0400    // data16 offset of rep movsb's source,
#define STR_DST 0x0500    // its destination (also scanned by repne scasb)
#define STOSW_DST 0x0600  // and rep stosw's destination
#define LOW 0x5000        // linear address reached by [bp+...] through SS
#define DATA16_SIZE 0x10020
#define POISON 0xEEEEEEEEu  // what the slots hold before each routine

#define STR(x) #x
#define XSTR(x) STR(x)
/* The CS offset of a label of the blob, in assembly. */
#define OFF(label) "(" #label " - code16_start + " XSTR(C16_ORG) ")"

/* The 16-bit segment's data segment (SS-relative [bp] forms aside): the
 * routines' results (OUT), inputs the C code puts there, and the 64 KiB
 * wrap-around markers at 0x0010, 0xFFF8 and (never to be read) 0x10010.
 * Not static, like r16 and the flat buffers: the compiler must assume the
 * assembly below reads and writes them. */
uint8_t data16[DATA16_SIZE] __attribute__((aligned(16)));
uint8_t src32[64], dst32[64];
uint32_t flat_words[4];

/* ESP before the far call into a 16-bit routine and after its return
 * (call16, jump16): the assembly uses these offsets. */
struct esp16 {
  uint32_t before, after;
};
struct esp16 r16;

/* The 32-bit side. call16(offset) far-calls SEL_CODE16:offset through a
 * far pointer on the stack; jump16() enters c16_jmp by a far jmp, which
 * comes back by one to jump16_back. Both run the 16-bit code with DS = ES =
 * SEL_DATA16 and the general registers zero, record ESP before and after
 * in r16 (through the flat SS, as DS is no longer flat) and restore the C
 * registers and DS/ES. flat32_sub is a 32-bit routine the 16-bit code
 * far-calls with 0x66: EAX = its CS << 16 | 0x3232, ESI:EDI = the EIP and
 * CS the call pushed, EDX = how far ESP moved from EBP. */
__asm__(
    ".set SEL_CODE16, " XSTR(SEL_CODE16) "\n"
    ".set SEL_DATA16, " XSTR(SEL_DATA16) "\n"
    ".set OUT, " XSTR(OUT) "\n"
    ".set TABLE, " XSTR(TABLE) "\n"
    ".set FLAT_PTRS, " XSTR(FLAT_PTRS) "\n"
    ".set STR_SRC, " XSTR(STR_SRC) "\n"
    ".set STR_DST, " XSTR(STR_DST) "\n"
    ".set STOSW_DST, " XSTR(STOSW_DST) "\n"
    ".set LOW, " XSTR(LOW) "\n"
    ".macro regs_in\n"
    "  mov $SEL_DATA16, %eax\n"
    "  mov %ax, %ds\n"
    "  mov %ax, %es\n"
    "  mov %esp, %ss:r16+0\n"
    "  xor %eax, %eax\n"
    "  xor %ebx, %ebx\n"
    "  xor %ecx, %ecx\n"
    "  xor %edx, %edx\n"
    "  xor %esi, %esi\n"
    "  xor %edi, %edi\n"
    "  xor %ebp, %ebp\n"
    ".endm\n"
    ".macro regs_out\n"
    "  mov %esp, %ss:r16+4\n"
    ".endm\n"
    ".text\n"
    "call16:\n"
    "  push %ebp\n"
    "  push %ebx\n"
    "  push %esi\n"
    "  push %edi\n"
    "  push %ds\n"
    "  push %es\n"
    "  mov 28(%esp), %eax\n"  // the offset argument
    "  push $SEL_CODE16\n"    // the far pointer: offset, then selector
    "  push %eax\n"
    "  regs_in\n"
    "  lcall *(%esp)\n"
    "call16_ret:\n"
    "  regs_out\n"
    "  add $8, %esp\n"
    "  pop %es\n"
    "  pop %ds\n"
    "  pop %edi\n"
    "  pop %esi\n"
    "  pop %ebx\n"
    "  pop %ebp\n"
    "  ret\n"
    "jump16:\n"
    "  push %ebp\n"
    "  push %ebx\n"
    "  push %esi\n"
    "  push %edi\n"
    "  push %ds\n"
    "  push %es\n"
    "  regs_in\n"
    "  ljmp $SEL_CODE16, $" OFF(c16_jmp) "\n"
    "jump16_back:\n"
    "  regs_out\n"
    "  pop %es\n"
    "  pop %ds\n"
    "  pop %edi\n"
    "  pop %esi\n"
    "  pop %ebx\n"
    "  pop %ebp\n"
    "  ret\n"
    "flat32_sub:\n"
    "  mov (%esp), %esi\n"
    "  mov 4(%esp), %edi\n"
    "  and $0xffff, %edi\n"  // a 32-bit push of CS may leave bits 16-31 as they were
    "  mov %ebp, %edx\n"
    "  sub %esp, %edx\n"
    "  xor %eax, %eax\n"
    "  mov %cs, %ax\n"
    "  shl $16, %eax\n"
    "  or $0x3232, %eax\n"
    "  lret\n");
void call16(uint32_t offset);
void jump16(void);
extern const char call16_ret[], jump16_back[];

/* The 16-bit code, run in place: CS is based C16_ORG bytes below
 * code16_start, so a label's offset is OFF(label). Every routine but c16_jmp
 * is far-called by call16 and returns with lretl. Routines report through
 * "save n, reg", a store to DS:OUT + 4n ([disp16] or moffs addressing);
 * saveflags stores FLAGS & mask through DX (clobbering DX only) and leaves
 * EFLAGS as it was. */
__asm__(
    ".macro save slot, reg\n"
    "  mov \\reg, OUT + 4 * \\slot\n"
    ".endm\n"
    ".macro saveflags slot, mask=0x8d5\n"  // OF SF ZF AF PF CF
    "  pushf\n"
    "  pushf\n"
    "  pop %dx\n"
    "  and $\\mask, %dx\n"
    "  save \\slot, %dx\n"
    "  popf\n"
    ".endm\n"
    ".section .text.code16,\"ax\",@progbits\n"
    ".balign 16\n"
    ".code16\n"
    "code16_start:\n"

    /* Far transfers. */
    "c16_hello:\n"
    "  mov %cs, %ax\n"
    "  save 0, %ax\n"
    "  call c16_hello_ip\n"  // pushes the offset of the next instruction
    "c16_hello_ip:\n"
    "  pop %ax\n"
    "  save 1, %ax\n"
    "  mov (%esp), %ecx\n"  // 67 66: the EIP the 32-bit far call pushed
    "  save 2, %ecx\n"
    "  mov 4(%esp), %dx\n"  // and its CS, in the next dword
    "  save 3, %dx\n"
    "  lretl\n"  // 66 CB: pops a 32-bit EIP and CS

    "c16_far:\n"
    "  mov %esp, %ebp\n"
    "  lcallw $SEL_CODE16, $" OFF(c16_far_sub) "\n"  // 9A ptr16:16: pushes CS, IP as words
    "c16_far_ret16:\n"
    "  mov %ebp, %eax\n"
    "  sub %esp, %eax\n"
    "  save 3, %eax\n"
    "  lcalll $0x08, $flat32_sub\n"  // 66 9A ptr16:32: into 32-bit code, pushes dwords
    "c16_far_ret32:\n"
    "  save 4, %eax\n"
    "  save 5, %esi\n"
    "  save 6, %edi\n"
    "  save 7, %edx\n"
    "  mov %ebp, %eax\n"
    "  sub %esp, %eax\n"
    "  save 8, %eax\n"
    "  lretl\n"
    "c16_far_sub:\n"
    "  mov %ebp, %eax\n"
    "  sub %esp, %eax\n"
    "  save 0, %eax\n"
    "  mov (%esp), %ax\n"
    "  save 1, %ax\n"
    "  mov 2(%esp), %ax\n"
    "  save 2, %ax\n"
    "  lretw\n"  // CB: pops IP and CS as words

    "c16_jmp:\n"  // entered by jump16's ljmp
    "  mov %cs, %ax\n"
    "  save 0, %ax\n"
    "  ljmpw $SEL_CODE16, $" OFF(c16_jmp_same) "\n"  // EA ptr16:16
    "  mov $0xbad, %ax\n"
    "  save 1, %ax\n"
    "c16_jmp_same:\n"
    "  mov $0x1616, %ax\n"
    "  save 2, %ax\n"
    "  ljmpl $0x08, $jump16_back\n"  // 66 EA ptr16:32

    /* Arithmetic: EAX's upper half 0x1234 survives every 16-bit result. */
    "c16_arith:\n"
    "  mov $0x12345678, %eax\n"  // 66 B8 imm32
    "  mov $0xffff, %ax\n"
    "  stc\n"
    "  inc %ax\n"  // 0x0000, no carry into bit 16, CF kept
    "  save 0, %eax\n"
    "  saveflags 1\n"
    "  dec %ax\n"  // 0xffff
    "  save 2, %eax\n"
    "  saveflags 3\n"
    "  add $0x8001, %ax\n"  // 0x8000, CF
    "  save 4, %eax\n"
    "  saveflags 5\n"
    "  adc $0x7fff, %ax\n"  // 0x8000 + 0x7fff + 1 = 0x0000, CF ZF
    "  save 6, %eax\n"
    "  saveflags 7\n"
    "  sub $1, %ax\n"  // 0xffff, CF
    "  save 8, %eax\n"
    "  saveflags 9\n"
    "  sbb $0x7fff, %ax\n"  // -1 - 32767 - 1 = 0x7fff, OF
    "  save 10, %eax\n"
    "  saveflags 11\n"
    "  neg %ax\n"  // 0x8001, CF
    "  save 12, %eax\n"
    "  saveflags 13\n"
    "  mov $0x5555aaaa, %edx\n"
    "  mov $0x1234, %ax\n"
    "  mov $0x0100, %bx\n"
    "  mul %bx\n"  // DX:AX = 0x0012:0x3400, CF OF
    "  save 14, %eax\n"
    "  save 15, %edx\n"
    "  saveflags 16, 0x801\n"
    "  mov $-3, %ax\n"
    "  mov $7, %cx\n"
    "  imul %cx\n"  // DX:AX = -21, fits in AX: CF OF clear
    "  save 17, %eax\n"
    "  save 18, %edx\n"
    "  saveflags 19, 0x801\n"
    "  mov $0x7777ffff, %esi\n"
    "  mov $0x4000, %ax\n"
    "  imul $4, %ax, %si\n"  // 0x10000 truncated to 16 bits: 0, CF OF
    "  save 20, %esi\n"
    "  saveflags 21, 0x801\n"
    "  mov $1, %dx\n"
    "  mov $5, %ax\n"
    "  mov $0x10, %cx\n"
    "  div %cx\n"  // 0x10005 / 0x10: AX = 0x1000, DX = 5
    "  save 22, %eax\n"
    "  save 23, %edx\n"
    "  mov $-100, %ax\n"
    "  cwd\n"  // DX = 0xffff only
    "  save 24, %edx\n"
    "  mov $7, %cx\n"
    "  idiv %cx\n"  // -14 remainder -2
    "  save 25, %eax\n"
    "  save 26, %edx\n"
    "  mov $0x8421, %ax\n"
    "  rol $4, %ax\n"  // bit 15 rotates into bit 0: 0x4218
    "  save 27, %eax\n"
    "  mov $0x7fffffff, %ecx\n"
    "  addl $1, %ecx\n"  // 66: a 32-bit add, OF SF AF PF
    "  save 28, %ecx\n"
    "  saveflags 29\n"
    "  mov $0x10000, %eax\n"
    "  mov $0x10000, %ebx\n"
    "  mull %ebx\n"  // EDX:EAX = 1:0
    "  save 30, %eax\n"
    "  save 31, %edx\n"
    "  mov $0xcafe0000, %eax\n"
    "  mov $0x80, %bl\n"
    "  movsbw %bl, %ax\n"   // AX = 0xff80
    "  movswl %ax, %edx\n"  // 66 0F BF: 0xffffff80
    "  movzwl %ax, %ecx\n"  // 66 0F B7: 0x0000ff80
    "  save 32, %eax\n"
    "  save 33, %edx\n"
    "  save 34, %ecx\n"
    "  lretl\n"

    /* Addressing: DS:TABLE holds words 0xa000 + i. */
    "c16_addr:\n"
    "  mov $TABLE, %bx\n"
    "  mov $4, %si\n"
    "  mov $8, %di\n"
    "  mov (%bx,%si), %ax\n"  // word 2
    "  save 0, %ax\n"
    "  mov (%bx,%di), %ax\n"  // word 4
    "  save 1, %ax\n"
    "  mov -2(%bx,%si), %ax\n"  // word 1
    "  save 2, %ax\n"
    "  mov 0x10(%bx), %ax\n"  // word 8
    "  save 3, %ax\n"
    "  mov 0x120(%bx), %ax\n"  // word 0x90
    "  save 4, %ax\n"
    "  mov $TABLE + 6, %si\n"
    "  mov (%si), %ax\n"  // word 3
    "  save 5, %ax\n"
    "  mov $TABLE + 10, %di\n"
    "  mov (%di), %ax\n"  // word 5
    "  save 6, %ax\n"
    "  mov TABLE + 0x1fe, %ax\n"  // moffs16: word 0xff
    "  save 7, %ax\n"
    "  mov TABLE + 0x1fc, %cx\n"  // [disp16]: word 0xfe
    "  save 8, %cx\n"
    "  mov $0x600d, %cx\n"
    "  mov $0x20, %di\n"
    "  mov %cx, (%bx,%di)\n"  // word 0x10 = 0x600d
    "  mov $4, %si\n"
    "  addw $0x100, 0x40(%bx,%si)\n"  // word 0x22 += 0x100
    /* 64 KiB wrap-around. */
    "  mov $0xfff0, %bx\n"
    "  mov $0x20, %si\n"
    "  mov (%bx,%si), %ax\n"  // DS:0x0010
    "  save 9, %ax\n"
    "  mov $8, %bx\n"
    "  mov -0x10(%bx), %ax\n"  // DS:0xfff8
    "  save 10, %ax\n"
    "  mov $0xfff0, %bx\n"
    "  lea 0x30(%bx,%si), %ax\n"  // 0x0040
    "  save 11, %ax\n"
    "  mov $0xffffffff, %ecx\n"
    "  lea (%bx,%si), %ecx\n"  // 66: the 16-bit address zero-extended
    "  save 12, %ecx\n"
    "  mov $0x00012345, %ebx\n"
    "  mov $0x00010000, %esi\n"
    "  mov $0xffffffff, %eax\n"
    "  lea (%ebx,%esi), %ax\n"  // 67: low 16 bits of 0x22345
    "  save 13, %eax\n"
    /* [bp...] default to SS, which is flat: linear LOW + offset. */
    "  mov $LOW, %bp\n"
    "  mov $0x10, %si\n"
    "  mov $0x14, %di\n"
    "  mov (%bp,%si), %ax\n"
    "  save 14, %ax\n"
    "  mov (%bp,%di), %ax\n"
    "  save 15, %ax\n"
    "  mov 0x18(%bp), %ax\n"
    "  save 16, %ax\n"
    "  mov %ds:(%bp,%si), %ax\n"  // data16 + LOW + 0x10
    "  save 17, %ax\n"
    "  mov $LOW, %bx\n"
    "  mov %ss:(%bx,%si), %ax\n"  // linear LOW + 0x10
    "  save 18, %ax\n"
    /* 0x67: 32-bit addresses. */
    "  mov $TABLE, %ebx\n"
    "  mov $3, %ecx\n"
    "  mov (%ebx,%ecx,4), %ax\n"  // word 6
    "  save 19, %ax\n"
    "  mov (%ebx,%ecx,4), %eax\n"  // words 6 and 7
    "  save 20, %eax\n"
    "  mov FLAT_PTRS + 8, %esi\n"  // flat_words, above 1 MiB
    "  mov %ss:(%esi), %eax\n"
    "  save 21, %eax\n"
    "  mov %ss:4(%esi), %dx\n"
    "  save 22, %dx\n"
    "  movl $0x5e7f1a70, %ss:8(%esi)\n"
    "  lretl\n"

    /* Near control flow. EBP = ESP at the start, for the callees. */
    "c16_flow:\n"
    "  mov %esp, %ebp\n"
    "  call c16_flow_sub\n"  // E8 rel16
    "c16_flow_next:\n"
    "  save 0, %ax\n"
    "  save 1, %edx\n"
    "  mov %ebp, %eax\n"
    "  sub %esp, %eax\n"
    "  save 2, %eax\n"
    "  calll c16_flow_sub32\n"  // 66 E8 rel32
    "c16_flow_next32:\n"
    "  save 3, %eax\n"
    "  save 4, %edx\n"
    /* Bits 0-3 for the paths that must run, 12-15 for those that must not. */
    "  xor %ax, %ax\n"
    "  jmp 1f\n"  // rel8
    "  or $0x8000, %ax\n"
    "1:\n"
    "  or $1, %ax\n"
    "  {disp16} jmp 2f\n"  // E9 rel16
    "  or $0x4000, %ax\n"
    "2:\n"
    "  or $2, %ax\n"
    "  cmp $3, %ax\n"
    "  je 3f\n"  // taken
    "  or $0x2000, %ax\n"
    "3:\n"
    "  cmp $0, %ax\n"
    "  je 4f\n"  // not taken
    "  or $4, %ax\n"
    "4:\n"
    "  {disp16} jne 5f\n"  // 0F 85 rel16, taken
    "  or $0x1000, %ax\n"
    "5:\n"
    "  or $8, %ax\n"
    "  save 5, %ax\n"
    "  mov $0x00010003, %ecx\n"
    "  xor %dx, %dx\n"
    "6:\n"
    "  inc %dx\n"
    "  loop 6b\n"  // E2: counts CX only
    "  save 6, %dx\n"
    "  save 7, %ecx\n"
    "  mov $0x00010000, %ecx\n"
    "  xor %edx, %edx\n"
    "7:\n"
    "  inc %edx\n"
    "  addr32 loop 7b\n"  // 67 E2: counts ECX, 0x10000 times
    "  save 8, %edx\n"
    "  save 9, %ecx\n"
    "  xor %ax, %ax\n"
    "  mov $0x00010000, %ecx\n"
    "  jcxz 8f\n"  // CX = 0: taken
    "  or $0x8000, %ax\n"
    "8:\n"
    "  or $1, %ax\n"
    "  jecxz 9f\n"  // 67 E3: ECX != 0, not taken
    "  or $2, %ax\n"
    "9:\n"
    "  save 10, %ax\n"
    "  mov $" OFF(c16_flow_sub) ", %bx\n"
    "  call *%bx\n"  // FF D3
    "c16_flow_ind_next:\n"
    "  save 11, %ax\n"
    "  xor %cx, %cx\n"
    "  jmp *%cs:" OFF(c16_flow_slot) "\n"
    "  or $0x8000, %cx\n"
    "c16_flow_slot_target:\n"
    "  or $1, %cx\n"
    "  mov $" OFF(c16_flow_bx_target) ", %bx\n"
    "  jmp *%bx\n"
    "  or $0x4000, %cx\n"
    "c16_flow_bx_target:\n"
    "  or $2, %cx\n"
    "  save 12, %cx\n"
    "  push $0x1111\n"
    "  push $0x2222\n"
    "  call c16_flow_sub_ret\n"
    "  save 13, %ax\n"
    "  mov %ebp, %eax\n"
    "  sub %esp, %eax\n"
    "  save 14, %eax\n"
    "  lretl\n"
    /* AX = the return IP, EDX = how far ESP moved below EBP. */
    "c16_flow_sub:\n"
    "  mov (%esp), %ax\n"
    "  mov %ebp, %edx\n"
    "  sub %esp, %edx\n"
    "  ret\n"  // C3: pops IP
    "c16_flow_sub32:\n"
    "  mov (%esp), %eax\n"
    "  mov %ebp, %edx\n"
    "  sub %esp, %edx\n"
    "  retl\n"  // 66 C3: pops EIP
    /* The sum of two word arguments, which ret $4 removes. */
    "c16_flow_sub_ret:\n"
    "  mov 2(%esp), %ax\n"
    "  add 4(%esp), %ax\n"
    "  ret $4\n"
    "c16_flow_slot: .word " OFF(c16_flow_slot_target) "\n"

    /* The stack: ESP moves by the operand size; EBP = ESP at the start. */
    "c16_stack:\n"
    "  pushf\n"  // FLAGS at entry, restored at the end
    "  mov %esp, %ebp\n"
    "  mov $0x11112222, %eax\n"
    "  push %ax\n"           // 50: 2 bytes
    "  pushl $0x33334444\n"  // 66 68: 4 bytes
    "  push $0x5555\n"       // 68 iw: 2 bytes
    "  push $-2\n"           // 6A: sign-extended to a word
    "  mov %ebp, %ecx\n"
    "  sub %esp, %ecx\n"
    "  save 0, %ecx\n"
    "  mov (%esp), %eax\n"
    "  save 1, %eax\n"
    "  mov 4(%esp), %eax\n"
    "  save 2, %eax\n"
    "  mov 8(%esp), %ax\n"
    "  save 3, %ax\n"
    "  mov $0x99999999, %ebx\n"
    "  mov %ebx, %ecx\n"
    "  mov %ebx, %edx\n"
    "  mov %ebx, %esi\n"
    "  pop %bx\n"
    "  pop %cx\n"
    "  popl %edx\n"
    "  pop %si\n"
    "  save 4, %ebx\n"
    "  save 5, %ecx\n"
    "  save 6, %edx\n"
    "  save 7, %esi\n"
    "  mov %ebp, %eax\n"
    "  sub %esp, %eax\n"
    "  save 8, %eax\n"
    "  mov $0x0a0a, %ax\n"
    "  mov $0x0c0c, %cx\n"
    "  mov $0x0d0d, %dx\n"
    "  mov $0x0b0b, %bx\n"
    "  mov $0x0505, %si\n"
    "  mov $0x0d1d, %di\n"
    "  pusha\n"  // AX CX DX BX SP BP SI DI, words
    "  mov %ebp, %eax\n"
    "  sub %esp, %eax\n"
    "  save 9, %eax\n"
    "  mov 14(%esp), %ax\n"
    "  save 10, %ax\n"
    "  mov 6(%esp), %ax\n"  // SP before pusha
    "  save 11, %ax\n"
    "  mov (%esp), %ax\n"
    "  save 12, %ax\n"
    "  mov $0xffffffff, %eax\n"
    "  mov %eax, %ecx\n"
    "  mov %eax, %edx\n"
    "  mov %eax, %ebx\n"
    "  mov %eax, %esi\n"
    "  mov %eax, %edi\n"
    "  popa\n"
    "  save 13, %eax\n"
    "  save 14, %edi\n"
    "  mov %ebp, %eax\n"
    "  sub %esp, %eax\n"
    "  save 15, %eax\n"
    "  pushfl\n"
    "  popl %ebx\n"
    "  push $0x08d5\n"  // OF SF ZF AF PF CF; IF DF TF NT IOPL clear
    "  popf\n"          // 9D: FLAGS only
    "  pushf\n"
    "  pop %ax\n"
    "  save 16, %ax\n"
    "  pushfl\n"
    "  popl %ecx\n"
    "  xor %ebx, %ecx\n"
    "  and $0xffff0000, %ecx\n"
    "  save 17, %ecx\n"
    "  mov %esp, %edx\n"
    "  pushfl\n"
    "  sub %esp, %edx\n"
    "  popfl\n"
    "  save 18, %edx\n"
    "  mov %esp, %edx\n"
    "  push %ds\n"  // 1E: a word
    "  sub %esp, %edx\n"
    "  save 19, %edx\n"
    "  pop %ax\n"
    "  save 20, %ax\n"
    "  mov %esp, %edx\n"
    "  pushl %ds\n"  // 66 1E: a dword, of which only the low word is defined
    "  sub %esp, %edx\n"
    "  save 21, %edx\n"
    "  popl %eax\n"
    "  save 22, %ax\n"
    "  popf\n"
    "  lretl\n"

    /* String instructions; the upper halves of ECX/ESI/EDI are 0x5a5a. */
    "c16_string:\n"
    "  cld\n"
    "  mov $0x5a5a0000 + STR_SRC, %esi\n"
    "  mov $0x5a5a0000 + STR_DST, %edi\n"
    "  mov $0x5a5a0010, %ecx\n"
    "  rep movsb\n"  // CX bytes from DS:SI to ES:DI
    "  save 0, %esi\n"
    "  save 1, %edi\n"
    "  save 2, %ecx\n"
    "  mov $STOSW_DST, %di\n"
    "  mov $8, %cx\n"
    "  mov $0x1234, %ax\n"
    "  rep stosw\n"
    "  save 3, %edi\n"
    "  mov $0xfffc, %di\n"
    "  mov $4, %cx\n"
    "  mov $0xbeef, %ax\n"
    "  rep stosw\n"  // 0xfffc, 0xfffe, then 0x0000, 0x0002
    "  save 4, %edi\n"
    "  mov $STR_DST, %di\n"
    "  mov $0x20, %cx\n"
    "  mov $0x4a, %al\n"
    "  repne scasb\n"  // stops after the byte 0x4a, the 11th
    "  save 5, %edi\n"
    "  save 6, %ecx\n"
    "  push %es\n"
    "  mov $0x10, %ax\n"
    "  mov %ax, %es\n"  // flat
    "  mov FLAT_PTRS + 0, %esi\n"
    "  mov FLAT_PTRS + 4, %edi\n"
    "  mov $35, %ecx\n"
    "  addr32 rep movsb %ss:(%esi), %es:(%edi)\n"  // 67: ECX bytes, flat ESI and EDI
    "  pop %es\n"
    "  save 7, %esi\n"
    "  save 8, %edi\n"
    "  save 9, %ecx\n"
    "  lretl\n"

    /* Exceptions: BX collects the bits of the parts that ran. */
    "c16_exc:\n"
    "  xor %bx, %bx\n"
    "c16_ud:\n"
    "  ud2\n"  // the handler skips it
    "  or $1, %bx\n"
    "  mov $0x1234, %ax\n"
    "  xor %dx, %dx\n"
    "  xor %cx, %cx\n"
    "c16_div0:\n"
    "  div %cx\n"  // the handler skips it
    "  or $2, %bx\n"
    "  save 1, %eax\n"  // a faulting div leaves DX:AX alone
    "  mov $1, %dx\n"
    "  xor %ax, %ax\n"
    "  mov $1, %cx\n"
    "c16_div_big:\n"
    "  div %cx\n"  // quotient 0x10000: #DE for 16 bits
    "  or $4, %bx\n"
    "  int3\n"
    "c16_int3_next:\n"
    "  or $8, %bx\n"
    "  int $0x80\n"  // the handler adds 0x100 to EBX
    "c16_int_next:\n"
    "  or $0x10, %bx\n"
    "  save 0, %ebx\n"
    "  lretl\n"
    ".code32\n"
    ".text\n");
extern const char code16_start[], c16_hello[], c16_hello_ip[], c16_far[], c16_far_ret16[],
    c16_far_ret32[], c16_arith[], c16_addr[], c16_flow[], c16_flow_next[], c16_flow_next32[],
    c16_flow_ind_next[], c16_stack[], c16_string[], c16_exc[], c16_ud[], c16_div0[], c16_div_big[],
    c16_int3_next[], c16_int_next[];
#define C16_OFF(label) ((uint32_t)(label) - (uint32_t)code16_start + C16_ORG)

/* What the 32-bit handlers saw of the traps raised in 16-bit code. */
struct seen_trap {
  uint32_t vector, cs, eip, ds;
};
static struct seen_trap seen[8];
static uint32_t seen_count;

bool guest_trap(struct int_frame* frame) {
  if ((frame->cs & 0xFFFF) != SEL_CODE16 || seen_count == 8) return false;
  seen[seen_count++] =
      (struct seen_trap){frame->vector, frame->cs & 0xFFFF, frame->eip, frame->ds & 0xFFFF};
  switch (frame->vector) {
    case 0:  // #DE at div %cx (F7 F1)
    case 6:  // #UD at ud2 (0F 0B)
      frame->eip += 2;
      return true;
    case 3:  // int3 is a trap: EIP is already past it
      return true;
    case 0x80:
      frame->ebx += 0x100;
      return true;
    default:
      return false;
  }
}

static uint32_t slot(uint32_t n) {
  return ((volatile uint32_t*)(data16 + OUT))[n];
}

/* A 16-bit store must leave the upper half of its (poisoned) slot alone. */
static void check16(const char* what, uint32_t n, uint16_t want) {
  check_eq(what, slot(n), (POISON & 0xFFFF0000u) | want);
}

static uint16_t word16(uint32_t offset) {
  return (uint16_t)(data16[offset] | data16[offset + 1] << 8);
}

static void set_word16(uint32_t offset, uint16_t v) {
  data16[offset] = (uint8_t)v;
  data16[offset + 1] = (uint8_t)(v >> 8);
}

static volatile uint16_t* low_word(uint32_t linear) {
  return (volatile uint16_t*)linear;
}

static uint16_t read_cs(void) {
  uint16_t cs;
  __asm__ volatile("mov %%cs, %0" : "=r"(cs));
  return cs;
}

/* Poisons the slots and r16, far-calls the routine and checks that its
 * lretl popped exactly what the far call pushed. */
static void run16(const char* title, const char* routine) {
  kprintf("%s\n", title);
  for (uint32_t i = 0; i < OUT_SLOTS; ++i) ((volatile uint32_t*)(data16 + OUT))[i] = POISON;
  r16 = (struct esp16){0};
  call16(C16_OFF(routine));
  check_eq("back in the flat code segment", read_cs(), SEL_KERNEL_CODE);
  check_eq("esp after the far return", r16.after, r16.before);
}

static void far_transfers(void) {
  run16("far call from 32-bit code, lretl", c16_hello);
  check16("cs is the 16-bit selector", 0, SEL_CODE16);
  check16("near call pushed the 16-bit offset", 1, C16_OFF(c16_hello_ip));
  check_eq("the far call pushed a 32-bit eip", slot(2), (uint32_t)call16_ret);
  check16("and the flat cs above it", 3, SEL_KERNEL_CODE);

  run16("far calls out of 16-bit code", c16_far);
  check_eq("lcallw pushed 4 bytes", slot(0), 4);
  check16("lcallw pushed ip", 1, C16_OFF(c16_far_ret16));
  check16("lcallw pushed cs", 2, SEL_CODE16);
  check_eq("lretw popped them", slot(3), 0);
  check_eq("lcalll into flat 32-bit code ran it with cs 0x08", slot(4), 0x00083232);
  check_eq("lcalll pushed eip", slot(5), C16_OFF(c16_far_ret32));
  check_eq("lcalll pushed cs", slot(6), SEL_CODE16);
  check_eq("lcalll pushed 8 bytes", slot(7), 8);
  check_eq("the 32-bit lret popped them", slot(8), 0);

  kprintf("far jmp in and out\n");
  for (uint32_t i = 0; i < OUT_SLOTS; ++i) ((volatile uint32_t*)(data16 + OUT))[i] = POISON;
  r16 = (struct esp16){0};
  jump16();
  check16("entered by ljmp: cs is the 16-bit selector", 0, SEL_CODE16);
  check_eq("ljmpw to the same selector skipped the code after it", slot(1), POISON);
  check16("and ran its target", 2, 0x1616);
  check_eq("ljmpl came back to the flat code segment", read_cs(), SEL_KERNEL_CODE);
  check_eq("esp unchanged", r16.after, r16.before);
}

static void arithmetic(void) {
  run16("16-bit arithmetic", c16_arith);
  check_eq("inc ax: 0xffff + 1, upper half kept", slot(0), 0x12340000);
  check16("inc flags: ZF AF PF, CF kept", 1, 0x55);
  check_eq("dec ax", slot(2), 0x1234ffff);
  check16("dec flags: SF AF PF, CF kept", 3, 0x95);
  check_eq("add ax: carry out of bit 15 stays out of bit 16", slot(4), 0x12348000);
  check16("add flags: CF SF AF PF", 5, 0x95);
  check_eq("adc ax", slot(6), 0x12340000);
  check16("adc flags: CF ZF AF PF", 7, 0x55);
  check_eq("sub ax", slot(8), 0x1234ffff);
  check16("sub flags: CF SF AF PF", 9, 0x95);
  check_eq("sbb ax", slot(10), 0x12347fff);
  check16("sbb flags: OF AF PF", 11, 0x814);
  check_eq("neg ax", slot(12), 0x12348001);
  check16("neg flags: CF SF AF", 13, 0x91);
  check_eq("mul bx: ax", slot(14), 0x12343400);
  check_eq("mul bx: dx, upper half kept", slot(15), 0x55550012);
  check16("mul flags: CF OF", 16, 0x801);
  check_eq("imul cx: ax", slot(17), 0x1234ffeb);
  check_eq("imul cx: dx", slot(18), 0x5555ffff);
  check16("imul flags: CF OF clear", 19, 0);
  check_eq("imul $4, ax, si: truncated to 16 bits", slot(20), 0x77770000);
  check16("imul flags: CF OF", 21, 0x801);
  check_eq("div cx: ax", slot(22), 0x12341000);
  check_eq("div cx: dx", slot(23), 0x55550005);
  check_eq("cwd", slot(24), 0x5555ffff);
  check_eq("idiv cx: ax", slot(25), 0x1234fff2);
  check_eq("idiv cx: dx", slot(26), 0x5555fffe);
  check_eq("rol $4, ax rotates within 16 bits", slot(27), 0x12344218);
  check_eq("addl (0x66)", slot(28), 0x80000000);
  check16("addl flags: OF SF AF PF", 29, 0x894);
  check_eq("mull (0x66): eax", slot(30), 0);
  check_eq("mull (0x66): edx", slot(31), 1);
  check_eq("movsbw", slot(32), 0xcafeff80);
  check_eq("movswl (0x66)", slot(33), 0xffffff80);
  check_eq("movzwl (0x66)", slot(34), 0x0000ff80);
}

static void addressing(void) {
  for (uint32_t i = 0; i < 256; ++i) set_word16(TABLE + 2 * i, (uint16_t)(0xa000 + i));
  set_word16(0x0010, 0x1010);   // what DS:(0xfff0 + 0x20) reads
  set_word16(0x10010, 0xdead);  // what it would read without the wrap
  set_word16(0xfff8, 0xfff8);   // what DS:(8 - 0x10) reads
  *low_word(LOW + 0x10) = 0x55aa;
  *low_word(LOW + 0x14) = 0x66bb;
  *low_word(LOW + 0x18) = 0x77cc;
  set_word16(LOW + 0x10, 0xd5d5);  // what DS:(bp+si) would read
  set_word16(LOW + 0x14, 0xd6d6);
  set_word16(LOW + 0x18, 0xd7d7);
  flat_words[0] = 0xf1a7f1a7;
  flat_words[1] = 0x0000b0b0;
  flat_words[2] = 0;
  *(volatile uint32_t*)(data16 + FLAT_PTRS + 8) = (uint32_t)flat_words;

  run16("16-bit addressing in DS (based at data16, limit 0xffff)", c16_addr);
  check16("[bx+si]", 0, 0xa002);
  check16("[bx+di]", 1, 0xa004);
  check16("[bx+si+disp8] with a negative disp8", 2, 0xa001);
  check16("[bx+disp8]", 3, 0xa008);
  check16("[bx+disp16]", 4, 0xa090);
  check16("[si]", 5, 0xa003);
  check16("[di]", 6, 0xa005);
  check16("moffs16", 7, 0xa0ff);
  check16("[disp16]", 8, 0xa0fe);
  check_eq("store to [bx+di]", word16(TABLE + 0x20), 0x600d);
  check_eq("add to [bx+si+disp8]", word16(TABLE + 0x44), 0xa122);
  check("words around them untouched",
        word16(TABLE + 0x1e) == 0xa00f && word16(TABLE + 0x22) == 0xa011 &&
            word16(TABLE + 0x42) == 0xa021 && word16(TABLE + 0x46) == 0xa023);
  check16("[bx+si] = 0xfff0 + 0x20 wraps to 0x0010", 9, 0x1010);
  check16("[bx+disp8] = 8 - 0x10 wraps to 0xfff8", 10, 0xfff8);
  check16("lea wraps too", 11, 0x0040);
  check_eq("lea of a 16-bit address into ecx is zero-extended", slot(12), 0x00000010);
  check_eq("addr32 lea into ax keeps the low 16 bits", slot(13), 0xffff2345);
  check16("[bp+si] is SS-relative", 14, 0x55aa);
  check16("[bp+di] is SS-relative", 15, 0x66bb);
  check16("[bp+disp8] is SS-relative", 16, 0x77cc);
  check16("ds:[bp+si]", 17, 0xd5d5);
  check16("ss:[bx+si]", 18, 0x55aa);
  check16("addr32 [ebx+ecx*4]", 19, 0xa006);
  check_eq("addr32 [ebx+ecx*4], 32-bit operand", slot(20), 0xa007a006);
  check_eq("addr32 ss:[esi] above 1 MiB", slot(21), 0xf1a7f1a7);
  check16("addr32 ss:[esi+4]", 22, 0xb0b0);
  check_eq("addr32 store to ss:[esi+8]", flat_words[2], 0x5e7f1a70);
}

static void control_flow(void) {
  run16("near control flow", c16_flow);
  check16("call rel16 pushed the 16-bit offset of the next instruction", 0, C16_OFF(c16_flow_next));
  check_eq("call moved esp by 2", slot(1), 2);
  check_eq("ret popped 2", slot(2), 0);
  check_eq("calll (0x66) pushed a 32-bit eip", slot(3), C16_OFF(c16_flow_next32));
  check_eq("calll moved esp by 4, retl popped it", slot(4), 4);
  check16("jmp rel8/rel16, jcc short/near taken and not taken", 5, 0x000f);
  check16("loop ran 3 times on cx", 6, 3);
  check_eq("loop left ecx's upper half", slot(7), 0x00010000);
  check_eq("addr32 loop ran 0x10000 times on ecx", slot(8), 0x10000);
  check_eq("addr32 loop ended with ecx 0", slot(9), 0);
  check16("jcxz taken with cx 0, jecxz not taken with ecx 0x10000", 10, 3);
  check16("call *%bx pushed the offset after it", 11, C16_OFF(c16_flow_ind_next));
  check16("jmp *%cs:slot and jmp *%bx", 12, 3);
  check16("ret $4: the sum of the arguments", 13, 0x3333);
  check_eq("ret $4 removed them", slot(14), 0);
}

static void stack(void) {
  run16("stack (SS is the flat 32-bit segment: ESP moves)", c16_stack);
  check_eq("push ax, pushl, push imm16, push imm8 moved esp by 10", slot(0), 10);
  check_eq("push imm8 (sign-extended) and push imm16 on the stack", slot(1), 0x5555fffe);
  check_eq("pushl imm32 on the stack", slot(2), 0x33334444);
  check16("push ax on the stack", 3, 0x2222);
  check_eq("pop bx", slot(4), 0x9999fffe);
  check_eq("pop cx", slot(5), 0x99995555);
  check_eq("popl edx", slot(6), 0x33334444);
  check_eq("pop si", slot(7), 0x99992222);
  check_eq("pops moved esp back", slot(8), 0);
  check_eq("pusha pushed 16 bytes", slot(9), 16);
  check16("pusha: ax first", 10, 0x0a0a);
  check16("pusha: sp as before pusha", 11, (uint16_t)(r16.before - 8 - 2));
  check16("pusha: di last", 12, 0x0d1d);
  check_eq("popa restored ax, upper half kept", slot(13), 0xffff0a0a);
  check_eq("popa restored di", slot(14), 0xffff0d1d);
  check_eq("popa moved esp back", slot(15), 0);
  check16("popf/pushf of FLAGS", 16, 0x08d7);
  check_eq("popf left EFLAGS bits 16-31", slot(17), 0);
  check_eq("pushfl pushed 4 bytes", slot(18), 4);
  check_eq("push ds pushed 2 bytes", slot(19), 2);
  check16("push ds pushed the selector", 20, SEL_DATA16);
  check_eq("pushl ds pushed 4 bytes", slot(21), 4);
  check16("pushl ds pushed the selector", 22, SEL_DATA16);
}

static void strings(void) {
  for (uint32_t i = 0; i < 0x20; ++i) {
    data16[STR_SRC + i] = (uint8_t)(0x40 + i);
    data16[STR_DST + i] = 0;
    data16[STOSW_DST + i] = 0;
  }
  for (uint32_t i = 0; i < 4; ++i) data16[i] = data16[0xfffc + i] = data16[0x10000 + i] = 0;
  for (uint32_t i = 0; i < sizeof(src32); ++i) {
    src32[i] = (uint8_t)(i * 7 + 1);
    dst32[i] = 0;
  }
  *(volatile uint32_t*)(data16 + FLAT_PTRS + 0) = (uint32_t)src32;
  *(volatile uint32_t*)(data16 + FLAT_PTRS + 4) = (uint32_t)dst32;

  run16("string instructions", c16_string);
  bool copied = true;
  for (uint32_t i = 0; i < 0x20; ++i) copied &= data16[STR_DST + i] == (i < 0x10 ? 0x40 + i : 0);
  check("rep movsb copied cx bytes", copied);
  check_eq("rep movsb: esi", slot(0), 0x5a5a0000 + STR_SRC + 0x10);
  check_eq("rep movsb: edi", slot(1), 0x5a5a0000 + STR_DST + 0x10);
  check_eq("rep movsb: ecx", slot(2), 0x5a5a0000);
  bool stored = true;
  for (uint32_t i = 0; i < 0x20; ++i) {
    stored &= data16[STOSW_DST + i] == (i >= 0x10 ? 0 : (i & 1) ? 0x12 : 0x34);
  }
  check("rep stosw stored cx words", stored);
  check_eq("rep stosw: edi", slot(3), 0x5a5a0000 + STOSW_DST + 0x10);
  check("rep stosw from di 0xfffc wrapped to 0x0000",
        word16(0xfffc) == 0xbeef && word16(0xfffe) == 0xbeef && word16(0) == 0xbeef &&
            word16(2) == 0xbeef && word16(0x10000) == 0 && word16(0x10002) == 0);
  check_eq("rep stosw: edi after the wrap", slot(4), 0x5a5a0004);
  check_eq("repne scasb: edi", slot(5), 0x5a5a0000 + STR_DST + 11);
  check_eq("repne scasb: ecx", slot(6), 0x5a5a0000 + 0x20 - 11);
  copied = true;
  for (uint32_t i = 0; i < sizeof(dst32); ++i) copied &= dst32[i] == (i < 35 ? src32[i] : 0);
  check("addr32 rep movsb copied ecx bytes between flat buffers", copied);
  check_eq("addr32 rep movsb: esi", slot(7), (uint32_t)src32 + 35);
  check_eq("addr32 rep movsb: edi", slot(8), (uint32_t)dst32 + 35);
  check_eq("addr32 rep movsb: ecx", slot(9), 0);
}

static void check_seen(const char* what, uint32_t i, uint32_t vector, const char* eip) {
  kprintf("%s\n", what);
  check_eq("vector", seen[i].vector, vector);
  check_eq("pushed cs is the 16-bit selector", seen[i].cs, SEL_CODE16);
  check_eq("pushed eip is the 16-bit offset", seen[i].eip, C16_OFF(eip));
  check_eq("ds in the frame", seen[i].ds, SEL_DATA16);
}

static void exceptions(void) {
  run16("exceptions in 16-bit code, 32-bit handlers", c16_exc);
  check_eq("resumed after each, int $0x80 handler changed ebx", slot(0), 0x11f);
  check_eq("a faulting div left ax", slot(1), 0x1234);
  check_eq("traps seen", seen_count, 5);
  check_seen("#UD at ud2", 0, 6, c16_ud);
  check_seen("#DE at div by zero", 1, 0, c16_div0);
  check_seen("#DE at a div whose quotient needs 17 bits", 2, 0, c16_div_big);
  check_seen("#BP after int3", 3, 3, c16_int3_next);
  check_seen("int $0x80 after the instruction", 4, 0x80, c16_int_next);
}

void guest_main(uint32_t magic, const struct multiboot_info* mbi) {
  (void)magic;
  (void)mbi;
  /* 16-bit code: access 0x9A (present, DPL 0, execute/read), flags 0 (D = 0,
   * byte granularity); data: read/write, limit 0xFFFF. */
  gdt_set_segment(6, (uint32_t)code16_start - C16_ORG, 0xFFFF, 0x9A, 0x0);
  gdt_set_segment(7, (uint32_t)data16, 0xFFFF, 0x92, 0x0);
  far_transfers();
  arithmetic();
  addressing();
  control_flow();
  stack();
  strings();
  exceptions();
  guest_finish("code16");
}
