// Helpers for devices whose registers are bytes. A 16- or 32-bit port access
// to an 8-bit ISA device is split by the bus into byte accesses at
// consecutive ports; these do the same, so a device only sees bytes. Bytes
// past the device's range read as all-ones and are dropped on write, like
// unclaimed ports.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace bt86 {

template <typename ReadByte>
void read_bytes(uint64_t offset, uint64_t port_count, std::span<uint8_t> data, ReadByte&& read) {
  for (size_t i = 0; i < data.size(); ++i) {
    data[i] = offset + i < port_count ? read(offset + i) : 0xFF;
  }
}

template <typename WriteByte>
void write_bytes(uint64_t offset, uint64_t port_count, std::span<const uint8_t> data,
                 WriteByte&& write) {
  for (size_t i = 0; i < data.size(); ++i) {
    if (offset + i < port_count) write(offset + i, data[i]);
  }
}

// The little-endian value of an access of up to 8 bytes.
inline uint64_t access_value(std::span<const uint8_t> data) {
  uint64_t v = 0;
  for (size_t i = data.size(); i-- > 0;) v = (v << 8) | data[i];
  return v;
}

inline void fill_access(std::span<uint8_t> data, uint64_t value) {
  for (auto& b : data) {
    b = static_cast<uint8_t>(value);
    value >>= 8;
  }
}

}  // namespace bt86
