// Port 0x61, System Control Port B of the PC/AT: the PIT channel 2 gate
// (bit 0), the speaker data enable (bit 1), the memory refresh toggle
// (bit 4) and PIT channel 2's OUT (bit 5). Bits 2-3 (parity/channel check
// enables) read back as written; bits 6-7 (NMI sources) read as zero.
//
// The refresh bit flips on every read: BIOS and Linux delay loops wait for
// it to change, and a bit that never moves would hang them. Reads are the
// only clock this port needs, so it keeps none.
//
//   SystemControlPortB port_b(pit);
//   ports.attach(SystemControlPortB::kBase, 1, port_b);
#pragma once

#include <cstdint>

#include "devices/bus.h"
#include "devices/pit_8254.h"

namespace bt86 {

class SystemControlPortB final : public BusDevice {
 public:
  static constexpr uint16_t kBase = 0x61;
  static constexpr uint16_t kPortCount = 1;

  explicit SystemControlPortB(Pit8254& pit) : pit_(pit) {}

  std::string_view name() const override { return "system-control-b"; }
  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

  bool speaker_enabled() const { return (value_ & 0x02) != 0; }

 private:
  Pit8254& pit_;
  uint8_t value_ = 0;  // Bits 1-3 as written.
  bool refresh_ = false;
};

}  // namespace bt86
