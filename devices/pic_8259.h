// The PC's pair of 8259A programmable interrupt controllers: master at
// 0x20-0x21 (IRQ 0-7), slave at 0xA0-0xA1 (IRQ 8-15) cascaded into the
// master's IRQ2, plus the PIIX edge/level control registers (ELCR) at
// 0x4D0-0x4D1.
//
// Model (after the datasheet and QEMU's i8259): each chip keeps IRR, ISR,
// IMR and a rotating priority base. An edge-triggered input sets its IRR bit
// on a rising edge; a level-triggered one (ELCR bit or ICW1 LTIM) mirrors the
// line. The slave's INT output is the master's IRQ2 input. The INTR output
// (interrupt_pending()) is high when the master has an unmasked request of
// higher priority than anything in service; acknowledge() is the INTA cycle.
// If the request went away between INTR and INTA, the chip answers with its
// IRQ7 vector without setting ISR (the spurious interrupt, IRQ7 or IRQ15).
//
// Supported: ICW1-ICW4 (single/cascade, LTIM, AEOI, SFNM), OCW1 (IMR), OCW2
// (non-specific, specific and rotating EOIs, set priority, rotate in AEOI),
// OCW3 (IRR/ISR read select, poll, special mask mode). Not modelled: 8080
// mode and buffered mode (ICW4 bits 0, 2-3 only matter to the bus wiring).
//
// Pin numbers for set_irq are ISA IRQs 0-15. Pin 2 is the cascade and is not
// available to devices (as on every PC since the AT; ISA IRQ2 is wired to 9).
//
//   Pic8259 pic(log, [&](bool intr) { vcpu.kick_if(intr); });
//   pic.attach(ports);                       // 0x20, 0xA0, 0x4D0
//   IrqLine irq4(pic, 4);
//   if (pic.interrupt_pending()) deliver(pic.acknowledge());
//
// Not thread-safe: the machine serialises device access.
#pragma once

#include <array>
#include <cstdint>
#include <functional>

#include "devices/bus.h"
#include "devices/debug_log.h"
#include "devices/irq_line.h"

namespace bt86 {

class Pic8259 final : public IrqSink {
 public:
  static constexpr uint16_t kMasterBase = 0x20;
  static constexpr uint16_t kSlaveBase = 0xA0;
  static constexpr uint16_t kElcrBase = 0x4D0;
  static constexpr uint16_t kPortCount = 2;  // Each of the three ranges.

  // on_intr_change, if set, is called whenever the INTR output changes, so
  // the machine can wake a halted vCPU.
  explicit Pic8259(DebugLog& log, std::function<void(bool)> on_intr_change = {});
  Pic8259(const Pic8259&) = delete;
  Pic8259& operator=(const Pic8259&) = delete;

  // Attaches the master, slave and ELCR ranges at their PC addresses.
  void attach(Bus& ports);
  BusDevice& master_ports() { return master_ports_; }
  BusDevice& slave_ports() { return slave_ports_; }
  BusDevice& elcr_ports() { return elcr_ports_; }

  void set_irq(unsigned pin, bool level) override;

  // The INTR output.
  bool interrupt_pending() const { return intr_; }
  // The INTA cycle: returns the vector and moves the request from IRR to ISR
  // (unless auto-EOI). Returns the master's IRQ7 vector if nothing is pending.
  uint8_t acknowledge();

  // For tests and the debugger.
  struct ChipRegisters {
    uint8_t irr, isr, imr, vector_base, elcr;
  };
  ChipRegisters registers(bool slave) const;

 private:
  struct Chip {
    uint8_t irr = 0;
    uint8_t isr = 0;
    uint8_t imr = 0;
    uint8_t input_level = 0;  // Last level seen on each input pin.
    uint8_t elcr = 0;
    uint8_t elcr_mask = 0;  // ELCR bits that exist on this chip.
    uint8_t vector_base = 0;
    uint8_t priority_base = 0;  // The IRQ with the highest priority.
    uint8_t init_step = 0;      // 0: operational; 1-3: expecting ICW2-ICW4.
    bool expect_icw4 = false;
    bool single = false;
    bool level_triggered_all = false;  // ICW1 LTIM.
    bool auto_eoi = false;
    bool rotate_on_auto_eoi = false;
    bool special_fully_nested = false;
    bool special_mask = false;
    bool read_isr = false;
    bool poll = false;
  };

  class Ports final : public BusDevice {
   public:
    Ports(Pic8259& pic, int which) : pic_(pic), which_(which) {}
    std::string_view name() const override;
    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

   private:
    Pic8259& pic_;
    int which_;  // 0 master, 1 slave, 2 ELCR.
  };

  static int priority_of(const Chip& chip, uint8_t mask);
  static int requested_irq(const Chip& chip, bool is_master);
  void set_input(Chip& chip, unsigned pin, bool level);
  void intack(Chip& chip, int irq);
  void update();
  void write_command(Chip& chip, uint8_t value);
  void write_data(Chip& chip, uint8_t value);
  uint8_t read_chip(Chip& chip, uint64_t offset);
  bool is_master(const Chip& chip) const { return &chip == &chips_[0]; }

  DebugLog& log_;
  std::function<void(bool)> on_intr_change_;
  std::array<Chip, 2> chips_;
  bool intr_ = false;
  Ports master_ports_{*this, 0};
  Ports slave_ports_{*this, 1};
  Ports elcr_ports_{*this, 2};
};

}  // namespace bt86
