#include "devices/post_code_port.h"

#include "devices/io_access.h"

namespace bt86 {

void PostCodePort::read(uint64_t offset, std::span<uint8_t> data) {
  read_bytes(offset, kPortCount, data, [&](uint64_t) { return last_; });
}

void PostCodePort::write(uint64_t offset, std::span<const uint8_t> data) {
  write_bytes(offset, kPortCount, data, [&](uint64_t, uint8_t v) {
    last_ = v;
    ++writes_;
  });
}

}  // namespace bt86
