// The 8254 programmable interval timer: three 16-bit down-counters at 0x40-
// 0x42 and the mode/command register at 0x43, clocked at 1.193182 MHz.
// Channel 0 drives IRQ0, channel 2's gate and output are wired to port 0x61
// (see system_control_port_b.h), channel 1 (DRAM refresh) is modelled but
// wired to nothing.
//
// The counters are lazy: nothing runs between accesses. Each channel records
// when it started counting; a read computes the count and OUT from the
// elapsed time on the Clock. Channel 0's IRQ edges are raised by advance_to()
// when the machine's event loop reaches next_deadline_ns(). If the loop falls
// behind by several periods, they become one edge: the guest sees lost
// ticks, as on a busy real machine, never a burst.
//
// Modes 0-5 as the datasheet defines them, with OUT edges as follows: mode 0
// rises at terminal count (one IRQ), modes 2 and 3 rise once per period
// (periodic IRQs), mode 4 strobes once at terminal count; modes 1 and 5 wait
// for a rising gate edge, which on channel 0 (gate tied high) never comes.
// A new count in modes 2/3 takes effect at once (the datasheet waits for the
// end of the current period; no guest we run can tell). Gate low stops
// counting in modes 0, 2, 3 and 4; a rising gate restarts modes 1, 2, 3, 5.
// BCD counting is not supported: the control word is accepted as binary and
// the debug log says so once.
//
//   Pit8254 pit(clock, IrqLine(pic, 0), log);
//   ports.attach(Pit8254::kBase, Pit8254::kPortCount, pit);
#pragma once

#include <array>
#include <cstdint>
#include <optional>

#include "devices/bus.h"
#include "devices/clock.h"
#include "devices/debug_log.h"
#include "devices/irq_line.h"

namespace bt86 {

class Pit8254 final : public BusDevice, public TimedDevice {
 public:
  static constexpr uint16_t kBase = 0x40;
  static constexpr uint16_t kPortCount = 4;
  static constexpr uint64_t kFrequencyHz = 1'193'182;

  Pit8254(const Clock& clock, IrqLine irq0, DebugLog& log);

  std::string_view name() const override { return "pit-8254"; }
  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

  std::optional<uint64_t> next_deadline_ns() const override;
  void advance_to(uint64_t now_ns) override;

  // The GATE input and OUT output of a channel (0-2), for port 0x61.
  void set_gate(unsigned channel, bool level);
  bool gate(unsigned channel) const { return channels_.at(channel).gate; }
  bool output(unsigned channel) const;

 private:
  struct Channel {
    uint8_t mode = 0;
    uint8_t access = 3;      // 1: LSB only, 2: MSB only, 3: LSB then MSB.
    uint32_t reload = 0;     // 1..65536 once loaded.
    bool loaded = false;     // A count was written since the control word.
    bool null_count = true;  // Status bit 6: control word written, count not yet.
    bool gate = true;
    bool triggered = false;           // Modes 1 and 5: a gate edge started the count.
    bool counting = false;            // Time advances the counter.
    uint64_t start_ns = 0;            // When the current counting run started.
    uint64_t ticks_before_start = 0;  // Ticks counted before a gate pause.
    bool write_msb_next = false;
    uint8_t write_lsb = 0;
    bool read_msb_next = false;
    std::optional<uint16_t> latched_count;
    bool latched_msb_next = false;
    std::optional<uint8_t> latched_status;
    std::optional<uint64_t> next_irq_tick;  // Channel 0 only, in elapsed ticks.
  };

  uint64_t elapsed_ticks(const Channel& ch, uint64_t now_ns) const;
  uint16_t count_at(const Channel& ch, uint64_t ticks) const;
  bool out_at(const Channel& ch, uint64_t ticks) const;
  uint64_t ns_of_tick(const Channel& ch, uint64_t ticks) const;
  void write_control(uint8_t value);
  void write_count(Channel& ch, uint8_t value);
  void load(Channel& ch);
  void latch_count(Channel& ch);
  uint8_t status_of(const Channel& ch) const;
  uint8_t read_counter(Channel& ch);
  void schedule_irq(Channel& ch, uint64_t now_ticks);

  const Clock& clock_;
  IrqLine irq0_;
  DebugLog& log_;
  std::array<Channel, 3> channels_;
  bool bcd_logged_ = false;
};

}  // namespace bt86
