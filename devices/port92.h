// Port 0x92, System Control Port A (PS/2 "fast A20 and reset"): bit 1 drives
// the A20 gate, writing bit 0 as 1 resets the CPU. The other bits read back
// as written; bit 0 reads back 0 (the reset is a pulse).
//
//   Port92 port92(machine_control);
//   ports.attach(Port92::kBase, Port92::kPortCount, port92);
#pragma once

#include <cstdint>

#include "devices/bus.h"
#include "devices/machine_control.h"

namespace bt86 {

class Port92 final : public BusDevice {
 public:
  static constexpr uint16_t kBase = 0x92;
  static constexpr uint16_t kPortCount = 1;

  explicit Port92(MachineControl& control) : control_(control) {}

  std::string_view name() const override { return "port-92"; }
  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

  bool a20() const { return (value_ & 0x02) != 0; }

 private:
  MachineControl& control_;
  uint8_t value_ = 0x02;  // A20 enabled: the machine starts guests with A20 on.
};

}  // namespace bt86
