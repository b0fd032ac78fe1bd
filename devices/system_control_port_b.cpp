#include "devices/system_control_port_b.h"

#include "devices/io_access.h"

namespace bt86 {

void SystemControlPortB::read(uint64_t offset, std::span<uint8_t> data) {
  read_bytes(offset, kPortCount, data, [&](uint64_t) {
    refresh_ = !refresh_;
    return static_cast<uint8_t>((pit_.gate(2) ? 0x01 : 0) | (value_ & 0x0E) |
                                (refresh_ ? 0x10 : 0) | (pit_.output(2) ? 0x20 : 0));
  });
}

void SystemControlPortB::write(uint64_t offset, std::span<const uint8_t> data) {
  write_bytes(offset, kPortCount, data, [&](uint64_t, uint8_t v) {
    value_ = v & 0x0E;
    pit_.set_gate(2, (v & 0x01) != 0);
  });
}

}  // namespace bt86
