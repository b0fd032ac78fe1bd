/* The contract between the benchmark (bench/bench_translator.cpp) and the
   freestanding guest kernels: the host fills the parameter block and the
   input buffer, sets ESP, and starts at the kernel's entry (kernel base);
   the kernel writes its result into the block and stops with hlt. Kernels
   keep no state outside the stack and these two areas, so every run starts
   from the same memory. */
#ifndef BT86_BENCH_KERNEL_ABI_H
#define BT86_BENCH_KERNEL_ABI_H

#define KERNEL_PARAMS 0x200000u
#define KERNEL_INPUT 0x400000u

struct kernel_params {
  unsigned int input;  /* guest address of the input buffer */
  unsigned int length; /* bytes */
  unsigned int result[8];
};

void kernel_main(volatile struct kernel_params* p);

/* Entry: call kernel_main with the parameter block, then hlt. */
#define KERNEL_ENTRY                  \
  __asm__(                            \
      ".section .text.start,\"ax\"\n" \
      ".globl _start\n"               \
      "_start:\n"                     \
      "  pushl $0x200000\n"           \
      "  call kernel_main\n"          \
      "  hlt\n"                       \
      ".previous\n")

#endif
