#include "devices/i8042.h"

#include "devices/io_access.h"

namespace bt86 {
namespace {

constexpr uint8_t kStatusOutputFull = 0x01;
constexpr uint8_t kStatusSystem = 0x04;
constexpr uint8_t kStatusCommand = 0x08;
constexpr uint8_t kStatusNotInhibited = 0x10;
constexpr uint8_t kStatusAuxData = 0x20;
constexpr uint8_t kStatusTimeout = 0x40;

constexpr uint8_t kCtrKeyboardIrq = 0x01;
constexpr uint8_t kCtrAuxIrq = 0x02;
constexpr uint8_t kCtrKeyboardDisabled = 0x10;
constexpr uint8_t kCtrAuxDisabled = 0x20;

constexpr uint8_t kOutputPortReset = 0x01;  // Active low.
constexpr uint8_t kOutputPortA20 = 0x02;

// What a controller returns when no device answers.
constexpr uint8_t kNoDeviceResponse = 0xFE;
// A real controller has a one-byte buffer; a few more keep responses to
// back-to-back commands without letting a guest grow the queue unbounded.
constexpr size_t kMaxQueued = 16;

}  // namespace

I8042::I8042(MachineControl& control, IrqLine keyboard_irq, IrqLine aux_irq, DebugLog& log)
    : control_(control), keyboard_irq_(keyboard_irq), aux_irq_(aux_irq), log_(log) {}

void I8042::attach(Bus& ports) {
  ports.attach(kDataPort, 1, *this);
  ports.attach(kCommandPort, 1, command_port_);
}

uint8_t I8042::status() const {
  uint8_t s = kStatusNotInhibited | (command_byte_ & kStatusSystem);
  if (last_write_was_command_) s |= kStatusCommand;
  if (!output_.empty()) {
    s |= kStatusOutputFull;
    if (output_.front().aux) s |= kStatusAuxData;
    if (output_.front().timeout) s |= kStatusTimeout;
  }
  return s;
}

void I8042::queue(uint8_t value, bool aux, bool timeout) {
  if (output_.size() == kMaxQueued) {
    log_.note("i8042: output buffer overflow, byte {:#04x} dropped", value);
    return;
  }
  output_.push_back({value, aux, timeout});
  update_irqs();
}

void I8042::update_irqs() {
  const bool have = !output_.empty();
  const bool keyboard = have && !output_.front().aux && (command_byte_ & kCtrKeyboardIrq);
  const bool aux = have && output_.front().aux && (command_byte_ & kCtrAuxIrq);
  if (keyboard != keyboard_irq_level_) {
    keyboard_irq_level_ = keyboard;
    keyboard_irq_.set(keyboard);
  }
  if (aux != aux_irq_level_) {
    aux_irq_level_ = aux;
    aux_irq_.set(aux);
  }
}

uint8_t I8042::read_data() {
  if (output_.empty()) return 0;
  const uint8_t value = output_.front().value;
  output_.pop_front();
  update_irqs();
  return value;
}

void I8042::write_output_port(uint8_t value) {
  const uint8_t old = output_port_;
  // The reset line is a pulse: it reads back inactive.
  output_port_ = value | kOutputPortReset;
  if ((old ^ output_port_) & kOutputPortA20) control_.set_a20((output_port_ & kOutputPortA20) != 0);
  if ((value & kOutputPortReset) == 0) control_.request_reset();
}

void I8042::write_data(uint8_t value) {
  last_write_was_command_ = false;
  if (!pending_command_) {
    // A byte for the keyboard, and there is none.
    queue(kNoDeviceResponse, false, true);
    return;
  }
  const uint8_t command = *pending_command_;
  pending_command_.reset();
  switch (command) {
    case 0x60:
      command_byte_ = value;
      update_irqs();
      break;
    case 0xD1:
      write_output_port(value);
      break;
    case 0xD2:
      queue(value, false);
      break;
    case 0xD3:
      queue(value, true);
      break;
    default:  // 0xD4: a byte for the AUX device, and there is none.
      queue(kNoDeviceResponse, true, true);
      break;
  }
}

void I8042::write_command(uint8_t command) {
  last_write_was_command_ = true;
  pending_command_.reset();
  switch (command) {
    case 0x20:
      queue(command_byte_, false);
      break;
    case 0x60:
    case 0xD1:
    case 0xD2:
    case 0xD3:
    case 0xD4:
      pending_command_ = command;
      break;
    case 0xA7:
      command_byte_ |= kCtrAuxDisabled;
      break;
    case 0xA8:
      command_byte_ &= ~kCtrAuxDisabled;
      break;
    case 0xA9:  // AUX interface test: no error.
    case 0xAB:  // Keyboard interface test: no error.
    case 0xE0:  // Test inputs: clock and data low.
      queue(0x00, false);
      break;
    case 0xAA:  // Controller self-test: passed.
      queue(0x55, false);
      break;
    case 0xAD:
      command_byte_ |= kCtrKeyboardDisabled;
      break;
    case 0xAE:
      command_byte_ &= ~kCtrKeyboardDisabled;
      break;
    case 0xD0:
      queue(output_port_, false);
      break;
    case 0xDD:
      write_output_port(output_port_ & ~kOutputPortA20);
      break;
    case 0xDF:
      write_output_port(output_port_ | kOutputPortA20);
      break;
    default:
      if (command >= 0xF0) {
        // Pulse output lines: a clear bit 0 pulses the CPU reset line.
        if ((command & 0x01) == 0) control_.request_reset();
      } else {
        log_.note("i8042: command {:#04x} not supported; ignored", command);
      }
      break;
  }
}

void I8042::read(uint64_t offset, std::span<uint8_t> data) {
  read_bytes(offset, 1, data, [&](uint64_t) { return read_data(); });
}

void I8042::write(uint64_t offset, std::span<const uint8_t> data) {
  write_bytes(offset, 1, data, [&](uint64_t, uint8_t value) { write_data(value); });
}

void I8042::CommandPort::read(uint64_t offset, std::span<uint8_t> data) {
  read_bytes(offset, 1, data, [&](uint64_t) { return kbc_.status(); });
}

void I8042::CommandPort::write(uint64_t offset, std::span<const uint8_t> data) {
  write_bytes(offset, 1, data, [&](uint64_t, uint8_t value) { kbc_.write_command(value); });
}

}  // namespace bt86
