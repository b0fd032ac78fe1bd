/* 8259A PIC pair and 8254 PIT channel 0, programmed the way a PC kernel
 * does at boot: edge-triggered cascade, vectors moved off the CPU
 * exceptions, everything masked until a guest unmasks the line it tests. */
#include "tests/guests/lib/guest.h"
#include "tests/guests/lib/x86.h"

#define PIC_MASTER 0x20
#define PIC_SLAVE 0xA0
#define PIT_CH0 0x40
#define PIT_CMD 0x43
#define PIT_HZ 1193182u

void pic_init(uint8_t base) {
  outb(PIC_MASTER, 0x11);  // ICW1: edge, cascade, ICW4 follows
  outb(PIC_SLAVE, 0x11);
  outb(PIC_MASTER + 1, base);  // ICW2: vector base
  outb(PIC_SLAVE + 1, base + 8);
  outb(PIC_MASTER + 1, 0x04);  // ICW3: slave on IRQ2
  outb(PIC_SLAVE + 1, 0x02);   //       slave identity 2
  outb(PIC_MASTER + 1, 0x01);  // ICW4: 8086 mode, normal EOI
  outb(PIC_SLAVE + 1, 0x01);
  outb(PIC_MASTER + 1, 0xFB);  // all masked but the cascade line
  outb(PIC_SLAVE + 1, 0xFF);
}

void pic_unmask(uint8_t irq) {
  uint16_t port = irq < 8 ? PIC_MASTER + 1 : PIC_SLAVE + 1;
  outb(port, inb(port) & (uint8_t) ~(1u << (irq & 7)));
}

void pic_mask(uint8_t irq) {
  uint16_t port = irq < 8 ? PIC_MASTER + 1 : PIC_SLAVE + 1;
  outb(port, inb(port) | (uint8_t)(1u << (irq & 7)));
}

void pic_eoi(uint8_t irq) {
  if (irq >= 8) outb(PIC_SLAVE, 0x20);
  outb(PIC_MASTER, 0x20);
}

uint8_t pic_read_isr_master(void) {
  outb(PIC_MASTER, 0x0B);  // OCW3: next read returns the ISR
  uint8_t isr = inb(PIC_MASTER);
  outb(PIC_MASTER, 0x0A);  // back to reading the IRR
  return isr;
}

void pit_start_periodic(uint32_t hz) {
  uint32_t divisor = PIT_HZ / hz;
  outb(PIT_CMD, 0x34);  // channel 0, lobyte/hibyte, mode 2, binary
  outb(PIT_CH0, (uint8_t)(divisor & 0xFF));
  outb(PIT_CH0, (uint8_t)(divisor >> 8));
}

uint16_t pit_read_count(void) {
  outb(PIT_CMD, 0x00);  // latch channel 0
  uint8_t lo = inb(PIT_CH0);
  uint8_t hi = inb(PIT_CH0);
  return (uint16_t)(lo | hi << 8);
}
