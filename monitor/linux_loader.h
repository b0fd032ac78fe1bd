// Loads a Linux bzImage through the 32-bit boot protocol (protocol 2.06+,
// Documentation/arch/x86/boot.rst), entering the kernel's code32_start with
// the real-mode setup code skipped.
//
// Guest-physical layout the loader uses (all below 640 KiB, away from the
// kernel at 1 MiB and from the initrd at the top of RAM):
//   0x6000            GDT (flat_boot_state.h)
//   0x7000            struct boot_params, the "zero page"
//   0x20000-0x2FFFF   kernel command line
//   0x100000          protected-mode kernel (the part after the setup sectors)
//   top of RAM        initrd, page aligned, as high as initrd_addr_max allows
//
// The loader checks that the kernel's whole footprint (its file part and
// init_size, at 1 MiB and at its preferred address when relocatable, where
// the decompressor puts it) fits in RAM and that the initrd does not overlap
// it; everything else about the image is the kernel's business.
//
//   CpuState entry = load_linux(memory, map, images);
#pragma once

#include <cstdint>
#include <span>

#include "monitor/boot_image.h"
#include "monitor/cpu_state.h"
#include "monitor/guest_memory.h"
#include "monitor/memory_map.h"

namespace bt86 {

namespace linux_boot {
inline constexpr uint32_t kGdtAddr = 0x6000;
inline constexpr uint32_t kBootParamsAddr = 0x7000;
inline constexpr uint32_t kCmdlineAddr = 0x20000;
inline constexpr uint32_t kCmdlineAreaSize = 0x10000;
inline constexpr uint32_t kKernelAddr = 0x100000;
inline constexpr uint16_t kMinProtocol = 0x0206;

// Offsets in struct boot_params (and, for the setup header, in the image).
inline constexpr uint32_t kAltMemK = 0x1E0;
inline constexpr uint32_t kE820Entries = 0x1E8;
inline constexpr uint32_t kSetupSects = 0x1F1;
inline constexpr uint32_t kSyssize = 0x1F4;
inline constexpr uint32_t kBootFlag = 0x1FE;
inline constexpr uint32_t kJump = 0x200;
inline constexpr uint32_t kHeader = 0x202;
inline constexpr uint32_t kVersion = 0x206;
inline constexpr uint32_t kTypeOfLoader = 0x210;
inline constexpr uint32_t kLoadflags = 0x211;
inline constexpr uint32_t kCode32Start = 0x214;
inline constexpr uint32_t kRamdiskImage = 0x218;
inline constexpr uint32_t kRamdiskSize = 0x21C;
inline constexpr uint32_t kHeapEndPtr = 0x224;
inline constexpr uint32_t kCmdLinePtr = 0x228;
inline constexpr uint32_t kInitrdAddrMax = 0x22C;
inline constexpr uint32_t kKernelAlignment = 0x230;
inline constexpr uint32_t kRelocatableKernel = 0x234;
inline constexpr uint32_t kCmdlineSize = 0x238;
inline constexpr uint32_t kPrefAddress = 0x258;
inline constexpr uint32_t kInitSize = 0x260;
inline constexpr uint32_t kE820Table = 0x2D0;
inline constexpr uint32_t kE820MaxEntries = 128;
inline constexpr uint32_t kBootParamsSize = 0x1000;

inline constexpr uint32_t kHdrSMagic = 0x53726448;  // "HdrS"
inline constexpr uint8_t kLoadedHigh = 0x01;
inline constexpr uint8_t kCanUseHeap = 0x80;
inline constexpr uint8_t kLoaderTypeUndefined = 0xFF;
// The heap end the protocol suggests for a loader that does not run the
// real-mode setup: 0xE000 - 0x200, relative to the setup code.
inline constexpr uint16_t kHeapEnd = 0xDE00;
}  // namespace linux_boot

// True if the image carries the "HdrS" setup-header signature.
bool is_bzimage(std::span<const uint8_t> image);

// Throws ImageError (naming the kernel or initrd file) if the image is not a
// loadable bzImage, the command line is too long for it, or it or the initrd
// does not fit in RAM.
CpuState load_linux(GuestMemory& memory, const MemoryMap& map, const BootImages& images);

}  // namespace bt86
