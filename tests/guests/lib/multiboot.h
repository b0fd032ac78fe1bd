/* The Multiboot v1 boot information the loader hands over in EBX (only the
   fields the test guests read). */
#pragma once

#include <stdint.h>

#define MULTIBOOT_BOOTLOADER_MAGIC 0x2BADB002u
#define MULTIBOOT_INFO_MEMORY (1u << 0)
#define MULTIBOOT_INFO_CMDLINE (1u << 2)
#define MULTIBOOT_INFO_MMAP (1u << 6)

struct multiboot_info {
  uint32_t flags;
  uint32_t mem_lower, mem_upper;  // KiB
  uint32_t boot_device;
  uint32_t cmdline;
  uint32_t mods_count, mods_addr;
  uint32_t syms[4];
  uint32_t mmap_length, mmap_addr;
} __attribute__((packed));

/* `size` counts the bytes after itself, so the next entry is at
   (char*)entry + size + 4. */
struct multiboot_mmap_entry {
  uint32_t size;
  uint64_t addr, len;
  uint32_t type;  // 1 = available RAM
} __attribute__((packed));
