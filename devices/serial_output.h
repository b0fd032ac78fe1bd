// Where a UART's transmitted bytes go: the terminal, a file, a test buffer.
// The transmitter is infinitely fast: write() gets every byte the moment the
// guest writes THR, so a slow sink slows the guest, never loses output.
#pragma once

#include <cstdint>
#include <span>

namespace bt86 {

class SerialOutput {
 public:
  virtual ~SerialOutput() = default;
  virtual void write(std::span<const uint8_t> bytes) = 0;
};

}  // namespace bt86
