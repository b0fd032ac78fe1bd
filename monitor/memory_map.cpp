#include "monitor/memory_map.h"

#include <charconv>

#include <fmt/format.h>

namespace bt86 {

MemoryMap::MemoryMap(uint64_t ram_size) : ram_size_(ram_size) {
  if (ram_size < kMinRamSize || ram_size > kMaxRamSize) {
    throw MemoryMapError(
        fmt::format("guest RAM size {} MiB is outside the supported range 16 MiB .. 3072 MiB "
                    "(a 32-bit guest without PAE)",
                    ram_size >> 20));
  }
  if (ram_size % 4096 != 0) {
    throw MemoryMapError(fmt::format("guest RAM size {} is not a multiple of 4 KiB", ram_size));
  }
  regions_ = {
      {0, kLowRamEnd, RegionKind::kRam, "conventional RAM"},
      {kLowRamEnd, kHighRamBase - kLowRamEnd, RegionKind::kReserved, "VGA and legacy ROM"},
      {kHighRamBase, ram_size - kHighRamBase, RegionKind::kRam, "extended RAM"},
      {kMmioBase, kMmioEnd - kMmioBase, RegionKind::kMmio, "MMIO hole"},
  };
}

const MemoryRegion* MemoryMap::find(uint64_t gpa) const {
  for (const MemoryRegion& r : regions_) {
    if (gpa >= r.base && gpa < r.end()) return &r;
  }
  return nullptr;
}

bool MemoryMap::is_ram(uint64_t gpa, uint64_t length) const {
  if (length == 0) return find(gpa) && find(gpa)->kind == RegionKind::kRam;
  for (const MemoryRegion& r : regions_) {
    if (r.kind == RegionKind::kRam && gpa >= r.base && gpa <= r.end() && length <= r.end() - gpa) {
      return true;
    }
  }
  return false;
}

std::vector<E820Entry> MemoryMap::e820() const {
  std::vector<E820Entry> table;
  for (const MemoryRegion& r : regions_) {
    switch (r.kind) {
      case RegionKind::kRam:
        table.push_back({r.base, r.length, e820::kRam});
        break;
      case RegionKind::kReserved:
        table.push_back({r.base, r.length, e820::kReserved});
        break;
      case RegionKind::kMmio:
        break;
    }
  }
  return table;
}

uint64_t parse_memory_size(std::string_view text) {
  const auto bad = [&](std::string_view why) {
    return MemoryMapError(
        fmt::format("invalid memory size '{}': {} (examples: 256M, 1G)", text, why));
  };
  if (text.empty()) throw bad("empty");
  uint64_t value = 0;
  const char* first = text.data();
  const char* last = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(first, last, value);
  if (ec == std::errc::result_out_of_range) throw bad("too large");
  if (ec != std::errc() || ptr == first) throw bad("expected a number");
  unsigned shift = 0;
  if (ptr != last) {
    if (last - ptr != 1) throw bad("expected one of the suffixes K, M, G after the number");
    switch (*ptr) {
      case 'k':
      case 'K':
        shift = 10;
        break;
      case 'm':
      case 'M':
        shift = 20;
        break;
      case 'g':
      case 'G':
        shift = 30;
        break;
      default:
        throw bad("unknown suffix (use K, M or G)");
    }
  }
  if (shift != 0 && value > (UINT64_MAX >> shift)) throw bad("too large");
  return value << shift;
}

}  // namespace bt86
