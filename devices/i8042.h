// The 8042 keyboard controller at 0x60 (data) and 0x64 (status/command),
// with no keyboard and no mouse plugged in.
//
// The controller itself is complete enough for Linux's i8042 driver and for
// reboot paths: status register, command byte (0x20/0x60), self-test (0xAA
// -> 0x55), port tests (0xAB, 0xA9 -> 0x00), port disable/enable (0xAD/0xAE,
// 0xA7/0xA8), output port (0xD0/0xD1: bit 0 low resets the CPU, bit 1 is
// A20), writes into its own output buffer (0xD2/0xD3, which is how Linux
// checks the AUX port and its IRQ), A20 shortcuts (0xDD/0xDF) and the pulse
// commands 0xF0-0xFF (bit 0 clear pulses reset).
//
// Bytes meant for a device (a data write with no command pending, or after
// 0xD4) get what a real controller returns when nothing answers: 0xFE with
// the timeout bit (status bit 6) set. Linux's libps2 sees a timeout/NAK at
// once and its atkbd/psmouse probes give up cleanly, without waiting out
// their own timeouts.
//
// Output bytes queue in a small FIFO; the one at its head is visible at
// 0x60 with OBF (and AUXB for AUX bytes). IRQ 1 (keyboard bytes) or IRQ 12
// (AUX bytes) is high while such a byte waits and the command byte enables
// that interrupt, low once it is read.
//
//   I8042 kbc(machine_control, IrqLine(pic, 1), IrqLine(pic, 12), log);
//   ports.attach(I8042::kDataPort, 1, kbc);
//   ports.attach(I8042::kCommandPort, 1, kbc.command_port());
#pragma once

#include <cstdint>
#include <deque>
#include <optional>

#include "devices/bus.h"
#include "devices/debug_log.h"
#include "devices/irq_line.h"
#include "devices/machine_control.h"

namespace bt86 {

class I8042 final : public BusDevice {
 public:
  static constexpr uint16_t kDataPort = 0x60;
  static constexpr uint16_t kCommandPort = 0x64;

  I8042(MachineControl& control, IrqLine keyboard_irq, IrqLine aux_irq, DebugLog& log);
  I8042(const I8042&) = delete;
  I8042& operator=(const I8042&) = delete;

  // Attaches the data port (this object) and the command port.
  void attach(Bus& ports);
  // This object is the data port (0x60); the status/command port (0x64) is a
  // second BusDevice because the two are not adjacent.
  BusDevice& command_port() { return command_port_; }

  std::string_view name() const override { return "i8042-data"; }
  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

  uint8_t command_byte() const { return command_byte_; }
  uint8_t output_port() const { return output_port_; }

 private:
  class CommandPort final : public BusDevice {
   public:
    explicit CommandPort(I8042& kbc) : kbc_(kbc) {}
    std::string_view name() const override { return "i8042-command"; }
    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

   private:
    I8042& kbc_;
  };

  struct OutputByte {
    uint8_t value;
    bool aux;
    bool timeout;
  };

  uint8_t status() const;
  uint8_t read_data();
  void write_data(uint8_t value);
  void write_command(uint8_t command);
  void queue(uint8_t value, bool aux, bool timeout = false);
  void write_output_port(uint8_t value);
  void update_irqs();

  MachineControl& control_;
  IrqLine keyboard_irq_;
  IrqLine aux_irq_;
  DebugLog& log_;
  CommandPort command_port_{*this};
  std::deque<OutputByte> output_;
  std::optional<uint8_t> pending_command_;  // A command waiting for its data byte.
  uint8_t command_byte_ = 0x47;             // XLATE, SYS, both interrupts: as a BIOS leaves it.
  uint8_t output_port_ = 0x03;              // Reset line inactive, A20 enabled.
  bool last_write_was_command_ = false;
  bool keyboard_irq_level_ = false;
  bool aux_irq_level_ = false;
};

}  // namespace bt86
