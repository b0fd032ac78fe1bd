/* Block copies and fills with rep movs/stos, the way Linux's i386 memcpy
   and memset do them (rep movsl, then rep movsb for the tail): blocks of
   16 bytes to 1 KiB, sized by the input (most copies in a kernel are
   small, so the cost around each rep counts), copied from the first half of the
   input buffer into the second half, every eighth block cleared first.
   result[0] is a checksum of the copied words. */
#include "kernel_abi.h"

KERNEL_ENTRY;

static void copy_block(void* to, const void* from, unsigned int n) {
  unsigned int ecx, edi, esi;
  __asm__ volatile(
      "rep movsl\n\t"
      "movl %4, %%ecx\n\t"
      "andl $3, %%ecx\n\t"
      "rep movsb"
      : "=&c"(ecx), "=&D"(edi), "=&S"(esi)
      : "0"(n / 4), "g"(n), "1"(to), "2"(from)
      : "memory");
}

static void clear_block(void* to, unsigned int n) {
  unsigned int ecx, edi;
  __asm__ volatile("rep stosl" : "=&c"(ecx), "=&D"(edi) : "0"(n / 4), "1"(to), "a"(0) : "memory");
}

void kernel_main(volatile struct kernel_params* p) {
  const unsigned char* in = (const unsigned char*)p->input;
  const unsigned int half = p->length / 2;
  unsigned char* out = (unsigned char*)p->input + half;
  unsigned int sum = 0;
  unsigned int at = 0;
  for (unsigned int round = 0; round < 64; ++round) {
    for (unsigned int block = 0; at + 1040 <= half; ++block) {
      const unsigned int n = 16 + (unsigned int)in[at] * 4 + (in[at + 1] & 3);
      if ((block & 7) == 0) clear_block(out + at, n & ~3u);
      copy_block(out + at, in + at, n);
      sum = sum * 31u + *(const unsigned int*)(out + at + (n & ~3u) - 4);
      at += n;
    }
    at = round + 1;
  }
  p->result[0] = sum;
}
