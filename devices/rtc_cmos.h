// The MC146818 real-time clock and its 128 bytes of CMOS RAM at 0x70 (index,
// bit 7 = NMI disable) and 0x71 (data), IRQ 8.
//
// Time: the guest's wall time is the WallClock's reading at construction
// plus the time elapsed on the Clock since, so it advances with the rest of
// the machine. The time registers (0x00-0x09, century at 0x32) are computed
// on each read in the format register B asks for (BCD or binary, 12 or 24
// hours). Setting register B.SET freezes them so the guest can write a new
// time; clearing it starts the clock from the written values. A time
// register written while SET is clear moves the clock at once.
//
// UIP (register A bit 7) reads 1 during the last 244 us before each second
// boundary, as on the chip, so Linux's "wait while UIP" loops end quickly and
// never read a torn time. The divider bits of register A are stored but time
// always runs. Periodic interrupts use register A's rate (rate 1-2 act as
// 8-9, as on the chip, i.e. 256 and 128 Hz).
//
// Interrupt flags (register C: PF, AF, UF, IRQF) are computed lazily from
// time: each read of C or advance_to() folds in every periodic tick, second
// boundary (UF) and alarm match (AF) since the last look. IRQF and the IRQ 8
// line are high while a flag is set whose enable (PIE, AIE, UIE) is set;
// reading C clears all flags and lowers the line. next_deadline_ns() reports
// the next periodic tick or second boundary an enabled interrupt waits for.
//
// The memory size fields are filled from the guest RAM size given to the
// constructor: 0x15/0x16 base memory (640 KiB), 0x17/0x18 and 0x30/0x31
// extended memory above 1 MiB in KiB (at most 0xFFFF), 0x34/0x35 memory above
// 16 MiB in 64 KiB units (at most 0xFFFF), and the standard checksum at
// 0x2E/0x2F over 0x10-0x2D. Every other byte is plain NVRAM.
//
//   RtcCmos rtc(clock, HostWallClock(), ram_bytes, IrqLine(pic, 8), log);
//   ports.attach(RtcCmos::kBase, RtcCmos::kPortCount, rtc);
#pragma once

#include <array>
#include <cstdint>
#include <optional>

#include "devices/bus.h"
#include "devices/clock.h"
#include "devices/debug_log.h"
#include "devices/irq_line.h"

namespace bt86 {

class RtcCmos final : public BusDevice, public TimedDevice {
 public:
  static constexpr uint16_t kBase = 0x70;
  static constexpr uint16_t kPortCount = 2;
  static constexpr unsigned kIrq = 8;

  RtcCmos(const Clock& clock, const WallClock& wall_clock, uint64_t ram_bytes, IrqLine irq8,
          DebugLog& log);

  std::string_view name() const override { return "rtc-cmos"; }
  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

  std::optional<uint64_t> next_deadline_ns() const override;
  void advance_to(uint64_t now_ns) override;

  bool nmi_disabled() const { return nmi_disabled_; }
  // The guest's wall time now, nanoseconds since the Unix epoch.
  int64_t guest_unix_ns() const;

 private:
  uint8_t read_register(uint8_t index);
  void write_register(uint8_t index, uint8_t value);
  static bool is_time_register(uint8_t index);
  void store_time(int64_t unix_seconds);  // Into the time registers.
  int64_t load_time() const;              // From the time registers.
  uint8_t encode(unsigned value) const;   // Binary -> register format.
  unsigned decode(uint8_t value) const;   // Register format -> binary.
  uint8_t encode_hour(unsigned hour) const;
  unsigned decode_hour(uint8_t value) const;
  std::optional<uint32_t> periodic_period_32k() const;  // In 32.768 kHz ticks.
  int64_t running_unix_ns(uint64_t clock_ns) const {
    return static_cast<int64_t>(clock_ns) + offset_ns_;
  }
  void set_running_time(int64_t unix_seconds, int64_t fraction_ns);
  bool alarm_matches(int64_t unix_seconds) const;
  void fold_in_events(uint64_t now_ns);
  void update_irq();
  bool updates_halted() const { return (cmos_[0x0B] & 0x80) != 0; }

  const Clock& clock_;
  IrqLine irq_;
  DebugLog& log_;
  std::array<uint8_t, 128> cmos_{};
  uint8_t index_ = 0;
  bool nmi_disabled_ = false;
  int64_t offset_ns_;        // Guest unix ns = clock ns + offset_ns_.
  uint64_t events_seen_ns_;  // Events up to this clock time are folded in.
  uint8_t flags_ = 0;        // Register C bits 4-6.
  bool irq_level_ = false;
};

}  // namespace bt86
