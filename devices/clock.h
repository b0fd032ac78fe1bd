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

// Wall-clock time, for the RTC only. The RTC reads it once, at
// construction, and from then on advances with its Clock, so guest wall time
// never jumps with host clock adjustments and tests fix it to any date.
class WallClock {
 public:
  virtual ~WallClock() = default;
  // Nanoseconds since the Unix epoch, UTC.
  virtual int64_t unix_ns() const = 0;
};

class HostWallClock final : public WallClock {
 public:
  int64_t unix_ns() const override;
};

class FixedWallClock final : public WallClock {
 public:
  explicit FixedWallClock(int64_t unix_ns) : unix_ns_(unix_ns) {}
  int64_t unix_ns() const override { return unix_ns_; }

 private:
  int64_t unix_ns_;
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
