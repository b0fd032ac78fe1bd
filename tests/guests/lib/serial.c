/* COM1 output for the test guests. Transmission polls LSR.THRE before each
 * byte, the way a boot console does, so no interrupt is ever needed; "\n"
 * goes out as "\r\n" for terminals (the harness normalises it). */
#include <stdarg.h>

#include "tests/guests/lib/guest.h"
#include "tests/guests/lib/x86.h"

#define COM1 0x3f8
#define LSR_THRE 0x20

void serial_init(void);

void serial_init(void) {
  outb(COM1 + 1, 0x00);  // no UART interrupts
  outb(COM1 + 3, 0x80);  // DLAB on
  outb(COM1 + 0, 0x01);  // divisor 1: 115200 baud
  outb(COM1 + 1, 0x00);
  outb(COM1 + 3, 0x03);  // 8N1, DLAB off
  outb(COM1 + 2, 0xC7);  // FIFOs on and cleared
  outb(COM1 + 4, 0x03);  // DTR, RTS
}

static void serial_put_raw(char c) {
  while ((inb(COM1 + 5) & LSR_THRE) == 0) {
  }
  outb(COM1, (uint8_t)c);
}

void serial_putc(char c) {
  if (c == '\n') serial_put_raw('\r');
  serial_put_raw(c);
}

void serial_write(const char* s, uint32_t len) {
  for (uint32_t i = 0; i < len; ++i) serial_putc(s[i]);
}

static void put_unsigned(uint32_t v, uint32_t base, int width, char pad) {
  char digits[12];
  int n = 0;
  do {
    digits[n++] = "0123456789abcdef"[v % base];
    v /= base;
  } while (v != 0);
  for (int i = n; i < width; ++i) serial_putc(pad);
  while (n > 0) serial_putc(digits[--n]);
}

void kprintf(const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  for (const char* p = fmt; *p != '\0'; ++p) {
    if (*p != '%') {
      serial_putc(*p);
      continue;
    }
    ++p;
    char pad = ' ';
    if (*p == '0') {
      pad = '0';
      ++p;
    }
    int width = 0;
    while (*p >= '0' && *p <= '9') width = width * 10 + (*p++ - '0');
    switch (*p) {
      case 's':
        for (const char* s = va_arg(args, const char*); *s != '\0'; ++s) serial_putc(*s);
        break;
      case 'c':
        serial_putc((char)va_arg(args, int));
        break;
      case 'u':
        put_unsigned(va_arg(args, uint32_t), 10, width, pad);
        break;
      case 'd': {
        int32_t v = va_arg(args, int32_t);
        if (v < 0) serial_putc('-');
        put_unsigned(v < 0 ? 0u - (uint32_t)v : (uint32_t)v, 10, width, pad);
        break;
      }
      case 'x':
        serial_putc('0');
        serial_putc('x');
        put_unsigned(va_arg(args, uint32_t), 16, width, pad);
        break;
      case '%':
        serial_putc('%');
        break;
      default:
        serial_putc('?');
        if (*p == '\0') --p;
        break;
    }
  }
  va_end(args);
}
