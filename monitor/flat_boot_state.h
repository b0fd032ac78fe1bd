// The 32-bit protected-mode entry state both boot protocols ask for.
//
// Linux's 32-bit boot protocol requires a loaded GDT with flat 4 GiB
// descriptors at __BOOT_CS (0x10) and __BOOT_DS (0x18); Multiboot only asks
// for flat segments and lets GDTR be anything. Both loaders build the same
// small GDT in guest memory so that the hidden descriptor caches in the
// CpuState and the descriptors in memory agree: a backend that reloads a
// segment register (or KVM checking guest state on entry) sees the same
// segment. Paging off, interrupts disabled, CR0 = PE | ET.
#pragma once

#include <cstdint>

#include "monitor/cpu_state.h"
#include "monitor/guest_memory.h"

namespace bt86 {

inline constexpr uint16_t kBootCodeSelector = 0x10;
inline constexpr uint16_t kBootDataSelector = 0x18;
// Four descriptors: null, unused, code, data.
inline constexpr uint32_t kBootGdtSize = 4 * 8;

// Writes the GDT at gdt_addr and returns a CpuState with CS = 0x10, all data
// segment registers 0x18, GDTR pointing at the table, EIP = entry.
CpuState flat_boot_state(GuestMemory& memory, uint32_t gdt_addr, uint32_t entry);

}  // namespace bt86
