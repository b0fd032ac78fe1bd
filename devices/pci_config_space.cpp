#include "devices/pci_config_space.h"

#include "devices/io_access.h"

namespace bt86 {

void PciConfigSpace::read(uint64_t offset, std::span<uint8_t> data) {
  if (offset == 0 && data.size() == 4) {
    fill_access(data, address_);
    return;
  }
  fill_access(data, ~0ULL);
}

void PciConfigSpace::write(uint64_t offset, std::span<const uint8_t> data) {
  if (offset == 0 && data.size() == 4) {
    // Bits 0-1 are hard-wired to zero: config cycles are dword-aligned.
    address_ = static_cast<uint32_t>(access_value(data)) & ~3u;
  }
}

}  // namespace bt86
