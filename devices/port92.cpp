#include "devices/port92.h"

#include "devices/io_access.h"

namespace bt86 {

void Port92::read(uint64_t offset, std::span<uint8_t> data) {
  read_bytes(offset, kPortCount, data, [&](uint64_t) { return value_; });
}

void Port92::write(uint64_t offset, std::span<const uint8_t> data) {
  write_bytes(offset, kPortCount, data, [&](uint64_t, uint8_t v) {
    const bool a20_changed = ((value_ ^ v) & 0x02) != 0;
    value_ = v & 0xFE;
    if (a20_changed) control_.set_a20(a20());
    if (v & 0x01) control_.request_reset();
  });
}

}  // namespace bt86
