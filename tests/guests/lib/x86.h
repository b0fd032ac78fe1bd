/* Thin wrappers over the x86 instructions the test guests use. Each is one
   instruction, so a guest reads like the hardware sequence it tests. */
#pragma once

#include <stdint.h>

static inline void outb(uint16_t port, uint8_t v) {
  __asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(port));
}
static inline void outl(uint16_t port, uint32_t v) {
  __asm__ volatile("outl %0, %1" ::"a"(v), "Nd"(port));
}
static inline uint8_t inb(uint16_t port) {
  uint8_t v;
  __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}

static inline uint32_t read_cr0(void) {
  uint32_t v;
  __asm__ volatile("mov %%cr0, %0" : "=r"(v));
  return v;
}
static inline uint32_t read_cr2(void) {
  uint32_t v;
  __asm__ volatile("mov %%cr2, %0" : "=r"(v));
  return v;
}
static inline uint32_t read_cr3(void) {
  uint32_t v;
  __asm__ volatile("mov %%cr3, %0" : "=r"(v));
  return v;
}
static inline uint32_t read_cr4(void) {
  uint32_t v;
  __asm__ volatile("mov %%cr4, %0" : "=r"(v));
  return v;
}
static inline void write_cr0(uint32_t v) {
  __asm__ volatile("mov %0, %%cr0" ::"r"(v) : "memory");
}
static inline void write_cr3(uint32_t v) {
  __asm__ volatile("mov %0, %%cr3" ::"r"(v) : "memory");
}
static inline void write_cr4(uint32_t v) {
  __asm__ volatile("mov %0, %%cr4" ::"r"(v) : "memory");
}
static inline void invlpg(uint32_t linear) {
  __asm__ volatile("invlpg (%0)" ::"r"(linear) : "memory");
}

static inline void cli(void) {
  __asm__ volatile("cli" ::: "memory");
}
static inline void sti(void) {
  __asm__ volatile("sti" ::: "memory");
}
/* sti's one-instruction interrupt shadow makes "sti; hlt" atomic: no
   interrupt can slip in between and leave the hlt waiting forever. */
static inline void sti_hlt(void) {
  __asm__ volatile("sti; hlt" ::: "memory");
}
static inline uint32_t read_eflags(void) {
  uint32_t v;
  __asm__ volatile("pushfl; popl %0" : "=r"(v));
  return v;
}

#define CR0_PE (1u << 0)
#define CR0_MP (1u << 1)
#define CR0_EM (1u << 2)
#define CR0_TS (1u << 3)
#define CR0_NE (1u << 5)
#define CR0_WP (1u << 16)
#define CR0_PG (1u << 31)
#define CR4_PSE (1u << 4)
#define CR4_PGE (1u << 7)
#define CR4_OSFXSR (1u << 9)
#define CR4_OSXMMEXCPT (1u << 10)
#define EFLAGS_IF (1u << 9)
