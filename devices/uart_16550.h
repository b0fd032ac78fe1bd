// A 16550A UART as on COM1 (0x3F8-0x3FF, IRQ 4).
//
// Registers per the National/TI datasheet: RBR/THR, IER, IIR/FCR, LCR, MCR,
// LSR, MSR, SCR, and the divisor latch behind LCR.DLAB. FIFOs are 16 bytes,
// enabled and reset through FCR; IIR bits 6-7 read 11 when they are on, which
// is how Linux tells a 16550A from a 16450.
//
// The transmitter is infinitely fast: a THR write goes straight to the
// SerialOutput (or, in loopback, to the receive FIFO), so THR and the shift
// register are always empty and LSR.THRE/TEMT always read 1. The THRE
// interrupt follows the datasheet: it becomes pending when THR empties (at
// once after each write) and when IER.ETBEI is set while THR is empty; a THR
// write or an IIR read that reports it clears it.
//
// Received bytes arrive from the machine's event loop through receive(),
// which accepts at most rx_space() bytes. Host input is held back (rx_space()
// is 0) until the guest first has the received-data interrupt enabled with
// the FIFOs on: a driver resets the FIFOs and drains RBR while it opens the
// port (Linux's 8250 driver enables the interrupt, then the FIFOs, whose
// switch-on clears them), so bytes typed or piped during boot would otherwise
// be thrown away. The cost is that a guest which only polls LSR, or runs the
// UART without FIFOs, gets no host input. Interrupt priorities: line status,
// received data (FIFO at or above the trigger level), character timeout
// (data below the trigger level: input comes in bursts, so the timeout is
// reported at once rather than after four character times), THRE, modem
// status.
//
// The IRQ output is a level: high while an enabled interrupt is pending and
// MCR.OUT2 is set, as the PC wires it (Linux's 8250 driver sets OUT2 to
// enable the line). Loopback mode (MCR bit 4) disconnects the outputs, so the
// line stays low; MSR then reflects DTR/RTS/OUT1/OUT2, as Linux's probe
// expects. With loopback off, CTS, DSR and DCD read as asserted (a
// terminal is attached).
//
//   Uart16550 com1(output, IrqLine(pic, 4), log);
//   ports.attach(Uart16550::kCom1Base, Uart16550::kPortCount, com1);
//   com1.receive(bytes.first(std::min(bytes.size(), com1.rx_space())));
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "devices/bus.h"
#include "devices/debug_log.h"
#include "devices/irq_line.h"
#include "devices/serial_output.h"

namespace bt86 {

class Uart16550 final : public BusDevice {
 public:
  static constexpr uint16_t kCom1Base = 0x3F8;
  static constexpr unsigned kCom1Irq = 4;
  static constexpr uint16_t kPortCount = 8;
  static constexpr size_t kFifoSize = 16;

  Uart16550(SerialOutput& output, IrqLine irq, DebugLog& log);

  std::string_view name() const override { return "uart-16550"; }
  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

  // Host input. Returns how many bytes were taken (at most rx_space()); in
  // loopback mode the receiver is disconnected and takes none.
  size_t receive(std::span<const uint8_t> bytes);
  size_t rx_space() const;

  uint16_t divisor() const { return divisor_; }

 private:
  uint8_t read_register(unsigned reg);
  void write_register(unsigned reg, uint8_t value);
  void transmit(uint8_t byte);
  void push_rx(uint8_t byte);
  void reset_rx();
  size_t rx_capacity() const { return fifo_enabled() ? kFifoSize : 1; }
  bool fifo_enabled() const { return (fcr_ & 0x01) != 0; }
  bool loopback() const { return (mcr_ & 0x10) != 0; }
  size_t rx_trigger_level() const;
  uint8_t modem_status_lines() const;
  uint8_t pending_interrupt() const;  // IIR bits 0-3.
  void update_irq();

  SerialOutput& output_;
  IrqLine irq_;
  DebugLog& log_;
  std::array<uint8_t, kFifoSize> rx_{};
  size_t rx_head_ = 0;
  size_t rx_count_ = 0;
  uint16_t divisor_ = 12;  // 9600 baud, as a BIOS leaves it.
  uint8_t ier_ = 0;
  uint8_t fcr_ = 0;
  uint8_t lcr_ = 0x03;
  uint8_t mcr_ = 0;
  uint8_t lsr_errors_ = 0;  // LSR bits 1-4, cleared by reading LSR.
  uint8_t msr_deltas_ = 0;  // MSR bits 0-3, cleared by reading MSR.
  uint8_t scr_ = 0;
  bool thre_pending_ = false;
  bool irq_level_ = false;
  bool receiver_armed_ = false;  // See the header comment; never cleared.
};

}  // namespace bt86
