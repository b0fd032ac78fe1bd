// The guest-physical memory map of the bt86 PC.
//
//   [0,          640 KiB)  RAM          conventional memory
//   [640 KiB,    1 MiB)    reserved     VGA window and legacy ROM area
//   [1 MiB,      ram_size) RAM          extended memory
//   [3 GiB,      4 GiB)    MMIO         hole for memory-mapped devices
//
// The memfd behind GuestMemory is ram_size bytes and is indexed by
// guest-physical address, so the 384 KiB under the legacy area exist in the
// memfd but are never reported as RAM. RAM never reaches the MMIO hole:
// sizes are limited to [16 MiB, 3 GiB] (32-bit guest, no PAE), and the lower
// bound is what a Debian 686 kernel plus a busybox initramfs needs.
//
// e820() is the one table both boot protocols hand the guest (Linux
// boot_params.e820_table, Multiboot mmap). The MMIO hole is left out of it
// on purpose: firmware reports PCI/MMIO space as a gap, and Linux allocates
// device windows from the largest gap below 4 GiB.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace bt86 {

class MemoryMapError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

enum class RegionKind { kRam, kReserved, kMmio };

struct MemoryRegion {
  uint64_t base;
  uint64_t length;
  RegionKind kind;
  std::string_view name;
  uint64_t end() const { return base + length; }
};

// The ACPI / BIOS INT 15h E820 entry; also the layout of a Multiboot mmap
// entry after its size field.
struct E820Entry {
  uint64_t addr;
  uint64_t size;
  uint32_t type;
  friend bool operator==(const E820Entry&, const E820Entry&) = default;
};

namespace e820 {
inline constexpr uint32_t kRam = 1;
inline constexpr uint32_t kReserved = 2;
}  // namespace e820

class MemoryMap {
 public:
  static constexpr uint64_t kMinRamSize = 16ull << 20;
  static constexpr uint64_t kMaxRamSize = 3ull << 30;
  static constexpr uint64_t kLowRamEnd = 640ull << 10;
  static constexpr uint64_t kHighRamBase = 1ull << 20;
  static constexpr uint64_t kMmioBase = 3ull << 30;
  static constexpr uint64_t kMmioEnd = 4ull << 30;

  // Throws MemoryMapError naming the accepted range if ram_size is below
  // 16 MiB, above 3 GiB or not a multiple of 4 KiB.
  explicit MemoryMap(uint64_t ram_size);

  uint64_t ram_size() const { return ram_size_; }
  // RAM above 1 MiB ends here (exclusive); equals ram_size().
  uint64_t ram_top() const { return ram_size_; }
  const std::vector<MemoryRegion>& regions() const { return regions_; }

  // The region containing gpa, or nullptr (above the RAM top and below the
  // MMIO hole nothing is mapped).
  const MemoryRegion* find(uint64_t gpa) const;
  // True if [gpa, gpa + length) lies entirely in RAM regions.
  bool is_ram(uint64_t gpa, uint64_t length) const;

  std::vector<E820Entry> e820() const;

 private:
  uint64_t ram_size_;
  std::vector<MemoryRegion> regions_;
};

// Parses "256M", "1G", "65536K", "268435456" (bytes). Throws MemoryMapError
// on syntax errors or overflow; does not check the RAM limits.
uint64_t parse_memory_size(std::string_view text);

}  // namespace bt86
