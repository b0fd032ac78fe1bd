#include "devices/debug_exit.h"

#include <algorithm>

#include "devices/io_access.h"

namespace bt86 {

void DebugExit::read(uint64_t, std::span<uint8_t> data) {
  std::fill(data.begin(), data.end(), 0);
}

void DebugExit::write(uint64_t offset, std::span<const uint8_t> data) {
  // QEMU takes the value of the access as written, whatever port of the
  // four it starts at; so do we.
  (void)offset;
  control_.request_debug_exit(debug_exit_code(static_cast<uint32_t>(access_value(data))));
}

}  // namespace bt86
