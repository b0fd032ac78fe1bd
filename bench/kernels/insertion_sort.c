/* Insertion sort of 32-bit signed integers in place (64 KiB in the
   benchmark): compare, branch and move in a tight data-dependent loop.
   result[0] is a position-weighted checksum of the sorted array. */
#include "kernel_abi.h"

KERNEL_ENTRY;

void kernel_main(volatile struct kernel_params* p) {
  int* a = (int*)p->input;
  const unsigned int n = p->length / 4;
  for (unsigned int i = 1; i < n; ++i) {
    const int v = a[i];
    unsigned int j = i;
    while (j > 0 && a[j - 1] > v) {
      a[j] = a[j - 1];
      --j;
    }
    a[j] = v;
  }
  unsigned int sum = 0;
  for (unsigned int i = 0; i < n; ++i) sum = sum * 31u + (unsigned int)a[i];
  p->result[0] = sum;
}
