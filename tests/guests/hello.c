/* hello: the loader contract. Checks the Multiboot magic in EAX and the
 * information structure in EBX: memory sizes, the command line (the
 * manifest passes "bt86-guest-arg"), and a memory map that has RAM where
 * the guest itself was loaded. Prints nothing that differs between QEMU and
 * bt86 (memory sizes vary with -m). */
#include "tests/guests/lib/guest.h"

static bool contains(const char* haystack, const char* needle) {
  for (; *haystack != '\0'; ++haystack) {
    const char* h = haystack;
    const char* n = needle;
    while (*n != '\0' && *h == *n) ++h, ++n;
    if (*n == '\0') return true;
  }
  return false;
}

static bool mmap_has_ram_at(const struct multiboot_info* mbi, uint64_t addr, uint32_t* entries,
                            bool* well_formed) {
  bool found = false;
  *entries = 0;
  *well_formed = true;
  uint32_t offset = 0;
  while (offset < mbi->mmap_length) {
    const struct multiboot_mmap_entry* e =
        (const struct multiboot_mmap_entry*)(mbi->mmap_addr + offset);
    if (e->size < 20) {
      *well_formed = false;
      break;
    }
    ++*entries;
    if (e->type == 1 && e->addr <= addr && addr < e->addr + e->len) found = true;
    offset += e->size + 4;
  }
  return found;
}

void guest_main(uint32_t magic, const struct multiboot_info* mbi) {
  kprintf("hello from a bt86 test guest\n");
  check_eq("multiboot magic in EAX", magic, MULTIBOOT_BOOTLOADER_MAGIC);
  check("info has memory sizes", (mbi->flags & MULTIBOOT_INFO_MEMORY) != 0);
  check("mem_lower > 0", mbi->mem_lower > 0);
  check("mem_upper > 0", mbi->mem_upper > 0);
  bool has_cmdline = check("info has a command line", (mbi->flags & MULTIBOOT_INFO_CMDLINE) != 0);
  check("command line contains bt86-guest-arg",
        has_cmdline && contains((const char*)mbi->cmdline, "bt86-guest-arg"));
  bool has_mmap = check("info has a memory map", (mbi->flags & MULTIBOOT_INFO_MMAP) != 0);
  uint32_t entries = 0;
  bool well_formed = false;
  bool ram = has_mmap && mmap_has_ram_at(mbi, 0x100000, &entries, &well_formed);
  check("memory map entries are well formed", has_mmap && well_formed && entries > 0);
  check("memory map has RAM at 1 MiB", ram);
  guest_finish("hello");
}
