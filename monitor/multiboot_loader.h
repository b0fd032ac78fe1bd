// Loads a Multiboot (version 1) kernel: an ELF32 i386 image, or any image
// using the header's address fields (flag 16, the "a.out kludge").
//
// Guest-physical layout the loader uses, below the 1 MiB where Multiboot
// kernels normally load (a segment overlapping it is rejected):
//   0x6000   GDT (flat_boot_state.h)
//   0x7000   struct multiboot_info
//   0x7400   module list (the initrd, if any, is module 0)
//   0x7800   memory map (the e820 table with a size field per entry)
//   0x8000   boot loader name, module string, command line (to 0x30000)
// The initrd module is placed page aligned at the top of RAM.
//
// Entry state per the specification: EAX = 0x2BADB002, EBX = the info
// address, flat 32-bit segments, paging and interrupts off.
//
//   if (find_multiboot_header(bytes)) state = load_multiboot(memory, map, images);
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "monitor/boot_image.h"
#include "monitor/cpu_state.h"
#include "monitor/guest_memory.h"
#include "monitor/memory_map.h"

namespace bt86 {

namespace multiboot {
inline constexpr uint32_t kHeaderMagic = 0x1BADB002;
inline constexpr uint32_t kBootMagic = 0x2BADB002;
inline constexpr uint32_t kSearchLimit = 8192;

// Header flags.
inline constexpr uint32_t kPageAlignModules = 1u << 0;
inline constexpr uint32_t kWantMemoryInfo = 1u << 1;
inline constexpr uint32_t kWantVideoMode = 1u << 2;
inline constexpr uint32_t kAddressFields = 1u << 16;

// multiboot_info.flags.
inline constexpr uint32_t kInfoMemory = 1u << 0;
inline constexpr uint32_t kInfoCmdline = 1u << 2;
inline constexpr uint32_t kInfoModules = 1u << 3;
inline constexpr uint32_t kInfoMemoryMap = 1u << 6;
inline constexpr uint32_t kInfoLoaderName = 1u << 9;

// multiboot_info field offsets.
inline constexpr uint32_t kInfoFlags = 0;
inline constexpr uint32_t kInfoMemLower = 4;
inline constexpr uint32_t kInfoMemUpper = 8;
inline constexpr uint32_t kInfoCmdlineAddr = 16;
inline constexpr uint32_t kInfoModsCount = 20;
inline constexpr uint32_t kInfoModsAddr = 24;
inline constexpr uint32_t kInfoMmapLength = 44;
inline constexpr uint32_t kInfoMmapAddr = 48;
inline constexpr uint32_t kInfoLoaderNameAddr = 64;
inline constexpr uint32_t kInfoSize = 120;

inline constexpr uint32_t kGdtAddr = 0x6000;
inline constexpr uint32_t kInfoAddr = 0x7000;
inline constexpr uint32_t kModulesAddr = 0x7400;
inline constexpr uint32_t kMmapAddr = 0x7800;
inline constexpr uint32_t kStringsAddr = 0x8000;
inline constexpr uint32_t kBootDataEnd = 0x30000;
inline constexpr char kLoaderName[] = "bt86";
}  // namespace multiboot

struct MultibootHeader {
  uint32_t offset;  // Of the magic, in the file.
  uint32_t flags;
  // Valid when flags has kAddressFields.
  uint32_t header_addr, load_addr, load_end_addr, bss_end_addr, entry_addr;
};

// The header in the first 8 KiB, or nullopt if there is no magic there.
// Throws ImageError (naming path) on a bad checksum, a truncated header or
// required features bt86 cannot provide.
std::optional<MultibootHeader> find_multiboot_header(std::span<const uint8_t> image,
                                                     const std::string& path);

// Throws ImageError naming the file: no header, not ELF32 i386, truncated,
// a segment outside RAM or over the loader's boot data, module too large.
CpuState load_multiboot(GuestMemory& memory, const MemoryMap& map, const BootImages& images);

}  // namespace bt86
