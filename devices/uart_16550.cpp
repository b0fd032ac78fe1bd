#include "devices/uart_16550.h"

#include <algorithm>

#include "devices/io_access.h"

namespace bt86 {
namespace {

// Register offsets (DLAB = 0 unless noted).
constexpr unsigned kData = 0;  // RBR / THR; DLL with DLAB.
constexpr unsigned kIer = 1;   // DLM with DLAB.
constexpr unsigned kIirFcr = 2;
constexpr unsigned kLcr = 3;
constexpr unsigned kMcr = 4;
constexpr unsigned kLsr = 5;
constexpr unsigned kMsr = 6;
constexpr unsigned kScr = 7;

constexpr uint8_t kIerRxData = 0x01;
constexpr uint8_t kIerThre = 0x02;
constexpr uint8_t kIerLineStatus = 0x04;
constexpr uint8_t kIerModemStatus = 0x08;

constexpr uint8_t kIirNone = 0x01;
constexpr uint8_t kIirModemStatus = 0x00;
constexpr uint8_t kIirThre = 0x02;
constexpr uint8_t kIirRxData = 0x04;
constexpr uint8_t kIirLineStatus = 0x06;
constexpr uint8_t kIirRxTimeout = 0x0C;

constexpr uint8_t kLsrDataReady = 0x01;
constexpr uint8_t kLsrOverrun = 0x02;
constexpr uint8_t kLsrThrEmpty = 0x20;
constexpr uint8_t kLsrTransmitterEmpty = 0x40;

constexpr uint8_t kMcrOut2 = 0x08;

}  // namespace

Uart16550::Uart16550(SerialOutput& output, IrqLine irq, DebugLog& log)
    : output_(output), irq_(irq), log_(log) {}

size_t Uart16550::rx_trigger_level() const {
  static constexpr size_t kLevels[] = {1, 4, 8, 14};
  return kLevels[fcr_ >> 6];
}

uint8_t Uart16550::modem_status_lines() const {
  if (!loopback()) return 0xB0;  // DCD, DSR, CTS: a terminal is attached.
  // Loopback: DTR -> DSR, RTS -> CTS, OUT1 -> RI, OUT2 -> DCD.
  return static_cast<uint8_t>(((mcr_ & 0x01) << 5) | ((mcr_ & 0x02) << 3) | ((mcr_ & 0x04) << 4) |
                              ((mcr_ & 0x08) << 4));
}

uint8_t Uart16550::pending_interrupt() const {
  if ((ier_ & kIerLineStatus) && lsr_errors_) return kIirLineStatus;
  if ((ier_ & kIerRxData) && rx_count_ > 0) {
    return fifo_enabled() && rx_count_ < rx_trigger_level() ? kIirRxTimeout : kIirRxData;
  }
  if ((ier_ & kIerThre) && thre_pending_) return kIirThre;
  if ((ier_ & kIerModemStatus) && msr_deltas_) return kIirModemStatus;
  return kIirNone;
}

void Uart16550::update_irq() {
  const bool level = pending_interrupt() != kIirNone && (mcr_ & kMcrOut2) && !loopback();
  if (level == irq_level_) return;
  irq_level_ = level;
  irq_.set(level);
}

void Uart16550::push_rx(uint8_t byte) {
  if (rx_count_ == rx_capacity()) {
    lsr_errors_ |= kLsrOverrun;
    return;
  }
  rx_[(rx_head_ + rx_count_) % kFifoSize] = byte;
  ++rx_count_;
}

void Uart16550::reset_rx() {
  rx_head_ = 0;
  rx_count_ = 0;
}

size_t Uart16550::rx_space() const {
  return (loopback() || !receiver_armed_) ? 0 : rx_capacity() - rx_count_;
}

size_t Uart16550::receive(std::span<const uint8_t> bytes) {
  const size_t n = std::min(bytes.size(), rx_space());
  for (size_t i = 0; i < n; ++i) push_rx(bytes[i]);
  update_irq();
  return n;
}

void Uart16550::transmit(uint8_t byte) {
  if (loopback()) {
    push_rx(byte);
  } else {
    output_.write({&byte, 1});
  }
  // THR empties at once: the THRE interrupt clears with the write and is
  // pending again, which the PIC sees as a new edge on the line.
  thre_pending_ = false;
  update_irq();
  thre_pending_ = true;
}

uint8_t Uart16550::read_register(unsigned reg) {
  const bool dlab = (lcr_ & 0x80) != 0;
  switch (reg) {
    case kData: {
      if (dlab) return static_cast<uint8_t>(divisor_);
      if (rx_count_ == 0) return 0;
      const uint8_t byte = rx_[rx_head_];
      rx_head_ = (rx_head_ + 1) % kFifoSize;
      --rx_count_;
      return byte;
    }
    case kIer:
      return dlab ? static_cast<uint8_t>(divisor_ >> 8) : ier_;
    case kIirFcr: {
      const uint8_t id = pending_interrupt();
      if (id == kIirThre) thre_pending_ = false;
      return static_cast<uint8_t>(id | (fifo_enabled() ? 0xC0 : 0));
    }
    case kLcr:
      return lcr_;
    case kMcr:
      return mcr_;
    case kLsr: {
      const uint8_t lsr = static_cast<uint8_t>((rx_count_ ? kLsrDataReady : 0) | lsr_errors_ |
                                               kLsrThrEmpty | kLsrTransmitterEmpty);
      lsr_errors_ = 0;
      return lsr;
    }
    case kMsr: {
      const uint8_t msr = modem_status_lines() | msr_deltas_;
      msr_deltas_ = 0;
      return msr;
    }
    case kScr:
    default:  // The device decodes three address lines: kScr is the last.
      return scr_;
  }
}

void Uart16550::write_register(unsigned reg, uint8_t value) {
  const bool dlab = (lcr_ & 0x80) != 0;
  switch (reg) {
    case kData:
      if (dlab) {
        divisor_ = static_cast<uint16_t>((divisor_ & 0xFF00) | value);
      } else {
        transmit(value);
      }
      break;
    case kIer:
      if (dlab) {
        divisor_ = static_cast<uint16_t>((divisor_ & 0x00FF) | (value << 8));
      } else {
        const uint8_t changed = (ier_ ^ value) & 0x0F;
        ier_ = value & 0x0F;
        // Enabling ETBEI with THR empty raises THRE at once (datasheet).
        if (changed & kIerThre) thre_pending_ = (ier_ & kIerThre) != 0;
      }
      break;
    case kIirFcr: {
      const uint8_t fcr = (value & 0x01) ? (value & 0xC9) : 0;
      if ((fcr ^ fcr_) & 0x01) reset_rx();  // Toggling the FIFOs clears them.
      if (value & 0x02) reset_rx();
      fcr_ = fcr;
      break;
    }
    case kLcr:
      lcr_ = value;
      break;
    case kMcr: {
      const uint8_t before = modem_status_lines();
      mcr_ = value & 0x1F;
      const uint8_t after = modem_status_lines();
      const uint8_t changed = before ^ after;
      if (changed & 0x10) msr_deltas_ |= 0x01;                      // DCTS
      if (changed & 0x20) msr_deltas_ |= 0x02;                      // DDSR
      if ((before & 0x40) && !(after & 0x40)) msr_deltas_ |= 0x04;  // TERI
      if (changed & 0x80) msr_deltas_ |= 0x08;                      // DDCD
      break;
    }
    case kLsr:
    case kMsr:
      log_.note("uart: write {:#04x} to read-only register {} ignored", value, reg);
      break;
    case kScr:
    default:
      scr_ = value;
      break;
  }
  if ((ier_ & kIerRxData) && fifo_enabled()) receiver_armed_ = true;
}

void Uart16550::read(uint64_t offset, std::span<uint8_t> data) {
  read_bytes(offset, kPortCount, data, [&](uint64_t reg) {
    const uint8_t value = read_register(static_cast<unsigned>(reg));
    update_irq();
    return value;
  });
}

void Uart16550::write(uint64_t offset, std::span<const uint8_t> data) {
  write_bytes(offset, kPortCount, data, [&](uint64_t reg, uint8_t value) {
    write_register(static_cast<unsigned>(reg), value);
    update_irq();
  });
}

}  // namespace bt86
