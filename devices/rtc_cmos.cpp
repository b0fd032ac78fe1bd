#include "devices/rtc_cmos.h"

#include <algorithm>
#include <chrono>

#include "devices/io_access.h"

namespace bt86 {
namespace {

constexpr int64_t kNsPerSecond = 1'000'000'000;
constexpr int64_t kSecondsPerDay = 86'400;
// UIP rises 244 us (8 cycles of the 32.768 kHz clock) before each update.
constexpr int64_t kUipWindowNs = 8 * kNsPerSecond / 32768;

constexpr uint8_t kSeconds = 0x00;
constexpr uint8_t kSecondsAlarm = 0x01;
constexpr uint8_t kMinutes = 0x02;
constexpr uint8_t kMinutesAlarm = 0x03;
constexpr uint8_t kHours = 0x04;
constexpr uint8_t kHoursAlarm = 0x05;
constexpr uint8_t kDayOfWeek = 0x06;
constexpr uint8_t kDayOfMonth = 0x07;
constexpr uint8_t kMonth = 0x08;
constexpr uint8_t kYear = 0x09;
constexpr uint8_t kRegA = 0x0A;
constexpr uint8_t kRegB = 0x0B;
constexpr uint8_t kRegC = 0x0C;
constexpr uint8_t kRegD = 0x0D;
constexpr uint8_t kCentury = 0x32;

constexpr uint8_t kRegBSet = 0x80;
constexpr uint8_t kRegBUpdateIrq = 0x10;
constexpr uint8_t kRegBBinary = 0x04;
constexpr uint8_t kRegB24Hour = 0x02;

constexpr uint8_t kFlagPeriodic = 0x40;
constexpr uint8_t kFlagAlarm = 0x20;
constexpr uint8_t kFlagUpdate = 0x10;

int64_t floor_div(int64_t a, int64_t b) {
  return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}

void put16(std::array<uint8_t, 128>& cmos, uint8_t index, uint64_t value) {
  value = std::min<uint64_t>(value, 0xFFFF);
  cmos[index] = static_cast<uint8_t>(value);
  cmos[index + 1] = static_cast<uint8_t>(value >> 8);
}

uint64_t period_index(uint64_t ns, uint32_t period_32k) {
  return static_cast<uint64_t>(static_cast<unsigned __int128>(ns) * 32768 /
                               (static_cast<unsigned __int128>(kNsPerSecond) * period_32k));
}

uint64_t ns_of_period_index(uint64_t index, uint32_t period_32k) {
  const unsigned __int128 scaled =
      static_cast<unsigned __int128>(index) * period_32k * kNsPerSecond;
  return static_cast<uint64_t>((scaled + 32767) / 32768);
}

}  // namespace

RtcCmos::RtcCmos(const Clock& clock, const WallClock& wall_clock, uint64_t ram_bytes, IrqLine irq8,
                 DebugLog& log)
    : clock_(clock),
      irq_(irq8),
      log_(log),
      offset_ns_(wall_clock.unix_ns() - static_cast<int64_t>(clock.now_ns())),
      events_seen_ns_(clock.now_ns()) {
  cmos_[kRegA] = 0x26;  // 32.768 kHz time base, 1024 Hz periodic rate.
  cmos_[kRegB] = kRegB24Hour;
  cmos_[kRegD] = 0x80;  // Valid RAM and time.
  constexpr uint64_t kKiB = 1024;
  constexpr uint64_t kMiB = 1024 * kKiB;
  put16(cmos_, 0x15, std::min<uint64_t>(640, ram_bytes / kKiB));
  const uint64_t extended_kib = ram_bytes > kMiB ? (ram_bytes - kMiB) / kKiB : 0;
  put16(cmos_, 0x17, extended_kib);
  put16(cmos_, 0x30, extended_kib);
  put16(cmos_, 0x34, ram_bytes > 16 * kMiB ? (ram_bytes - 16 * kMiB) / (64 * kKiB) : 0);
  unsigned checksum = 0;
  for (unsigned i = 0x10; i <= 0x2D; ++i) checksum += cmos_[i];
  cmos_[0x2E] = static_cast<uint8_t>(checksum >> 8);
  cmos_[0x2F] = static_cast<uint8_t>(checksum);
}

bool RtcCmos::is_time_register(uint8_t index) {
  return index == kSeconds || index == kMinutes || index == kHours || index == kDayOfWeek ||
         index == kDayOfMonth || index == kMonth || index == kYear || index == kCentury;
}

uint8_t RtcCmos::encode(unsigned value) const {
  if (cmos_[kRegB] & kRegBBinary) return static_cast<uint8_t>(value);
  return static_cast<uint8_t>(((value / 10) << 4) | (value % 10));
}

unsigned RtcCmos::decode(uint8_t value) const {
  if (cmos_[kRegB] & kRegBBinary) return value;
  return (value >> 4) * 10 + (value & 0x0F);
}

uint8_t RtcCmos::encode_hour(unsigned hour) const {
  if (cmos_[kRegB] & kRegB24Hour) return encode(hour);
  const unsigned hour12 = hour % 12 == 0 ? 12 : hour % 12;
  return static_cast<uint8_t>(encode(hour12) | (hour >= 12 ? 0x80 : 0));
}

unsigned RtcCmos::decode_hour(uint8_t value) const {
  if (cmos_[kRegB] & kRegB24Hour) return decode(value);
  return decode(value & 0x7F) % 12 + ((value & 0x80) ? 12 : 0);
}

void RtcCmos::store_time(int64_t unix_seconds) {
  using namespace std::chrono;
  const int64_t day = floor_div(unix_seconds, kSecondsPerDay);
  const int64_t second_of_day = unix_seconds - day * kSecondsPerDay;
  const sys_days date{days{day}};
  const year_month_day ymd{date};
  const int y = static_cast<int>(ymd.year());
  cmos_[kSeconds] = encode(static_cast<unsigned>(second_of_day % 60));
  cmos_[kMinutes] = encode(static_cast<unsigned>(second_of_day / 60 % 60));
  cmos_[kHours] = encode_hour(static_cast<unsigned>(second_of_day / 3600));
  cmos_[kDayOfWeek] = encode(weekday{date}.c_encoding() + 1);  // Sunday is 1.
  cmos_[kDayOfMonth] = encode(static_cast<unsigned>(ymd.day()));
  cmos_[kMonth] = encode(static_cast<unsigned>(ymd.month()));
  cmos_[kYear] = encode(static_cast<unsigned>(y % 100));
  cmos_[kCentury] = encode(static_cast<unsigned>(y / 100));
}

int64_t RtcCmos::load_time() const {
  using namespace std::chrono;
  // Out-of-range fields (a guest may write anything) are clamped so the
  // date arithmetic stays defined; the chip would count garbage.
  const unsigned month = std::clamp(decode(cmos_[kMonth]), 1u, 12u);
  const unsigned day = std::clamp(decode(cmos_[kDayOfMonth]), 1u, 31u);
  const int y = static_cast<int>(decode(cmos_[kCentury]) * 100 + decode(cmos_[kYear]));
  const year_month_day first{year{y}, std::chrono::month{month}, std::chrono::day{1}};
  const int64_t days_since_epoch = sys_days{first}.time_since_epoch().count() + (day - 1);
  return days_since_epoch * kSecondsPerDay + decode_hour(cmos_[kHours]) * 3600 +
         decode(cmos_[kMinutes]) * 60 + decode(cmos_[kSeconds]);
}

int64_t RtcCmos::guest_unix_ns() const {
  if (updates_halted()) return load_time() * kNsPerSecond;
  return running_unix_ns(clock_.now_ns());
}

void RtcCmos::set_running_time(int64_t unix_seconds, int64_t fraction_ns) {
  offset_ns_ = unix_seconds * kNsPerSecond + fraction_ns - static_cast<int64_t>(clock_.now_ns());
}

std::optional<uint32_t> RtcCmos::periodic_period_32k() const {
  unsigned rate = cmos_[kRegA] & 0x0F;
  if (rate == 0) return std::nullopt;
  if (rate <= 2) rate += 7;
  return 1u << (rate - 1);
}

bool RtcCmos::alarm_matches(int64_t unix_seconds) const {
  const int64_t sod = unix_seconds - floor_div(unix_seconds, kSecondsPerDay) * kSecondsPerDay;
  // An alarm byte with its top two bits set matches any value.
  auto dont_care = [](uint8_t v) { return (v & 0xC0) == 0xC0; };
  const uint8_t s = cmos_[kSecondsAlarm], m = cmos_[kMinutesAlarm], h = cmos_[kHoursAlarm];
  return (dont_care(s) || decode(s) == sod % 60) && (dont_care(m) || decode(m) == sod / 60 % 60) &&
         (dont_care(h) || decode_hour(h) == sod / 3600);
}

void RtcCmos::fold_in_events(uint64_t now_ns) {
  if (now_ns <= events_seen_ns_) return;
  if (const auto period = periodic_period_32k()) {
    if (period_index(now_ns, *period) > period_index(events_seen_ns_, *period)) {
      flags_ |= kFlagPeriodic;
    }
  }
  if (!updates_halted()) {
    const int64_t from = floor_div(running_unix_ns(events_seen_ns_), kNsPerSecond);
    const int64_t to = floor_div(running_unix_ns(now_ns), kNsPerSecond);
    if (to > from) {
      flags_ |= kFlagUpdate;
      // A day of updates covers every alarm pattern; older ones add nothing.
      for (int64_t s = std::max(from + 1, to - kSecondsPerDay + 1); s <= to; ++s) {
        if (alarm_matches(s)) {
          flags_ |= kFlagAlarm;
          break;
        }
      }
    }
  }
  events_seen_ns_ = now_ns;
}

void RtcCmos::update_irq() {
  const bool level = (flags_ & cmos_[kRegB] & 0x70) != 0;
  if (level == irq_level_) return;
  irq_level_ = level;
  irq_.set(level);
}

std::optional<uint64_t> RtcCmos::next_deadline_ns() const {
  // While the line is high nothing new can be signalled until register C
  // is read; the flags are then folded in lazily.
  if (irq_level_) return std::nullopt;
  const uint8_t enables = cmos_[kRegB] & 0x70;
  std::optional<uint64_t> deadline;
  if (enables & kFlagPeriodic) {
    if (const auto period = periodic_period_32k()) {
      deadline = ns_of_period_index(period_index(events_seen_ns_, *period) + 1, *period);
    }
  }
  if ((enables & (kFlagAlarm | kFlagUpdate)) && !updates_halted()) {
    const int64_t next_second = floor_div(running_unix_ns(events_seen_ns_), kNsPerSecond) + 1;
    const int64_t at = next_second * kNsPerSecond - offset_ns_;
    const uint64_t boundary = at < 0 ? 0 : static_cast<uint64_t>(at);
    deadline = deadline ? std::min(*deadline, boundary) : boundary;
  }
  return deadline;
}

void RtcCmos::advance_to(uint64_t now_ns) {
  fold_in_events(now_ns);
  update_irq();
}

uint8_t RtcCmos::read_register(uint8_t index) {
  const uint64_t now = clock_.now_ns();
  if (is_time_register(index) && !updates_halted()) {
    store_time(floor_div(running_unix_ns(now), kNsPerSecond));
  }
  switch (index) {
    case kRegA: {
      const int64_t unix_ns = running_unix_ns(now);
      const int64_t fraction = unix_ns - floor_div(unix_ns, kNsPerSecond) * kNsPerSecond;
      const bool uip = !updates_halted() && fraction >= kNsPerSecond - kUipWindowNs;
      return static_cast<uint8_t>((cmos_[kRegA] & 0x7F) | (uip ? 0x80 : 0));
    }
    case kRegC: {
      fold_in_events(now);
      const uint8_t value = static_cast<uint8_t>(flags_ | (irq_level_ ? 0x80 : 0));
      flags_ = 0;
      update_irq();
      return value;
    }
    default:
      return cmos_[index];
  }
}

void RtcCmos::write_register(uint8_t index, uint8_t value) {
  const uint64_t now = clock_.now_ns();
  // Events up to now happened under the old settings.
  fold_in_events(now);
  if (is_time_register(index)) {
    if (updates_halted()) {
      cmos_[index] = value;
    } else {
      const int64_t unix_ns = running_unix_ns(now);
      const int64_t seconds = floor_div(unix_ns, kNsPerSecond);
      store_time(seconds);
      cmos_[index] = value;
      set_running_time(load_time(), unix_ns - seconds * kNsPerSecond);
    }
    return;
  }
  switch (index) {
    case kRegA:
      cmos_[kRegA] = value & 0x7F;  // UIP is read-only.
      break;
    case kRegB: {
      const bool was_halted = updates_halted();
      const bool halt = (value & kRegBSet) != 0;
      if (!was_halted && halt) store_time(floor_div(running_unix_ns(now), kNsPerSecond));
      // SET going high clears UIE (datasheet).
      cmos_[kRegB] = halt ? value & ~kRegBUpdateIrq : value;
      // The divider chain restarts with SET cleared: the next update is a
      // full second after the time written.
      if (was_halted && !halt) set_running_time(load_time(), 0);
      break;
    }
    case kRegC:
    case kRegD:
      log_.note("rtc: write {:#04x} to read-only register {:#04x} ignored", value, index);
      break;
    default:
      cmos_[index] = value;
      break;
  }
  update_irq();
}

void RtcCmos::read(uint64_t offset, std::span<uint8_t> data) {
  read_bytes(offset, kPortCount, data, [&](uint64_t port) -> uint8_t {
    // The index register is write-only; reads float.
    return port == 0 ? 0xFF : read_register(index_);
  });
}

void RtcCmos::write(uint64_t offset, std::span<const uint8_t> data) {
  write_bytes(offset, kPortCount, data, [&](uint64_t port, uint8_t value) {
    if (port == 0) {
      index_ = value & 0x7F;
      nmi_disabled_ = (value & 0x80) != 0;
    } else {
      write_register(index_, value);
    }
  });
}

}  // namespace bt86
