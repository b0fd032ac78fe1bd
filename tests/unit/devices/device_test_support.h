// Shared by the device tests: port I/O through a Bus, an IrqSink that
// records levels and rising edges, and a MachineControl that records
// requests.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "devices/bus.h"
#include "devices/irq_line.h"
#include "devices/machine_control.h"

namespace bt86::test {

class PortIo {
 public:
  explicit PortIo(Bus& bus) : bus_(bus) {}
  uint8_t inb(uint16_t port) {
    uint8_t v = 0;
    bus_.read(port, {&v, 1});
    return v;
  }
  void outb(uint16_t port, uint8_t v) { bus_.write(port, {&v, 1}); }
  uint32_t inl(uint16_t port) {
    std::array<uint8_t, 4> b{};
    bus_.read(port, b);
    return b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint32_t>(b[3]) << 24);
  }
  void outl(uint16_t port, uint32_t v) {
    const std::array<uint8_t, 4> b{static_cast<uint8_t>(v), static_cast<uint8_t>(v >> 8),
                                   static_cast<uint8_t>(v >> 16), static_cast<uint8_t>(v >> 24)};
    bus_.write(port, b);
  }

 private:
  Bus& bus_;
};

class RecordingIrqSink final : public IrqSink {
 public:
  void set_irq(unsigned pin, bool level) override {
    if (level && !levels[pin]) ++rising_edges[pin];
    levels[pin] = level;
  }
  std::array<bool, 16> levels{};
  std::array<int, 16> rising_edges{};
};

class RecordingMachineControl final : public MachineControl {
 public:
  void request_reset() override { ++resets; }
  void request_debug_exit(int status) override { exits.push_back(status); }
  void set_a20(bool enabled) override { a20.push_back(enabled); }
  int resets = 0;
  std::vector<int> exits;
  std::vector<bool> a20;
};

}  // namespace bt86::test
