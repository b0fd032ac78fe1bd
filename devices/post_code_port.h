// Port 0x80, the POST diagnostic port. BIOSes write progress codes to it and
// Linux writes to it as an I/O delay (outb_p), so writes are frequent and
// must be cheap: the last value is kept, readable back (as on boards with a
// POST card latch) and shown by the debugger.
#pragma once

#include <cstdint>

#include "devices/bus.h"

namespace bt86 {

class PostCodePort final : public BusDevice {
 public:
  static constexpr uint16_t kBase = 0x80;
  static constexpr uint16_t kPortCount = 1;

  std::string_view name() const override { return "post-code"; }
  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

  uint8_t last_code() const { return last_; }
  uint64_t write_count() const { return writes_; }

 private:
  uint8_t last_ = 0;
  uint64_t writes_ = 0;
};

}  // namespace bt86
