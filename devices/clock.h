// Time as devices see it. Devices never read the host clock directly: they
// get a Clock through their constructor, so tests drive them with a
// ManualClock and the VMM with the host monotonic clock.
//
// Timed devices (PIT, RTC) are lazy: their registers are computed from the
// clock when read, and the VMM's event loop asks each for its next deadline
// and calls advance_to() when it passes, which is when IRQ edges are raised.
#pragma once

#include <cstdint>
#include <optional>

namespace bt86 {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual uint64_t now_ns() const = 0;
};

class MonotonicClock final : public Clock {
 public:
  uint64_t now_ns() const override;
};

class ManualClock final : public Clock {
 public:
  uint64_t now_ns() const override { return now_; }
  void set(uint64_t ns) { now_ = ns; }
  void advance(uint64_t ns) { now_ += ns; }

 private:
  uint64_t now_ = 0;
};

class TimedDevice {
 public:
  virtual ~TimedDevice() = default;
  // The earliest host time at which this device will change an IRQ line, or
  // nullopt if none is scheduled.
  virtual std::optional<uint64_t> next_deadline_ns() const = 0;
  // Raise whatever edges fell due up to now_ns.
  virtual void advance_to(uint64_t now_ns) = 0;
};

}  // namespace bt86
