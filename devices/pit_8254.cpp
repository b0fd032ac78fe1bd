#include "devices/pit_8254.h"

#include "devices/io_access.h"

namespace bt86 {
namespace {

constexpr uint64_t kNsPerSecond = 1'000'000'000;

bool is_periodic(uint8_t mode) {
  return mode == 2 || mode == 3;
}
bool is_gate_triggered(uint8_t mode) {
  return mode == 1 || mode == 5;
}

}  // namespace

Pit8254::Pit8254(const Clock& clock, IrqLine irq0, DebugLog& log)
    : clock_(clock), irq0_(irq0), log_(log) {}

uint64_t Pit8254::elapsed_ticks(const Channel& ch, uint64_t now_ns) const {
  if (!ch.counting || now_ns < ch.start_ns) return ch.ticks_before_start;
  const unsigned __int128 ns = now_ns - ch.start_ns;
  return ch.ticks_before_start + static_cast<uint64_t>(ns * kFrequencyHz / kNsPerSecond);
}

// The first host time at which elapsed_ticks() reaches ticks (counting).
uint64_t Pit8254::ns_of_tick(const Channel& ch, uint64_t ticks) const {
  if (ticks <= ch.ticks_before_start) return ch.start_ns;
  const unsigned __int128 t = ticks - ch.ticks_before_start;
  return ch.start_ns + static_cast<uint64_t>((t * kNsPerSecond + kFrequencyHz - 1) / kFrequencyHz);
}

uint16_t Pit8254::count_at(const Channel& ch, uint64_t d) const {
  if (!ch.loaded || (is_gate_triggered(ch.mode) && !ch.triggered)) {
    return static_cast<uint16_t>(ch.reload);
  }
  switch (ch.mode) {
    case 2:
      return static_cast<uint16_t>(ch.reload - d % ch.reload);
    case 3:
      return static_cast<uint16_t>(ch.reload - (2 * d) % ch.reload);
    default:
      return static_cast<uint16_t>(ch.reload - d);
  }
}

bool Pit8254::out_at(const Channel& ch, uint64_t d) const {
  if (!ch.loaded) return ch.mode != 0;
  switch (ch.mode) {
    case 0:
      return d >= ch.reload;
    case 1:
      return !ch.triggered || d >= ch.reload;
    case 2:
      return !ch.gate || d % ch.reload != ch.reload - 1;
    case 3:
      return !ch.gate || d % ch.reload < (ch.reload + 1) / 2;
    case 4:
      return d != ch.reload;
    default:  // 5
      return !ch.triggered || d != ch.reload;
  }
}

bool Pit8254::output(unsigned channel) const {
  const Channel& ch = channels_.at(channel);
  return out_at(ch, elapsed_ticks(ch, clock_.now_ns()));
}

void Pit8254::set_gate(unsigned channel, bool level) {
  Channel& ch = channels_.at(channel);
  if (ch.gate == level) return;
  const uint64_t now = clock_.now_ns();
  if (level) {
    if (is_gate_triggered(ch.mode) || is_periodic(ch.mode)) {
      // A rising gate (re)starts the count from the reload value.
      ch.triggered = true;
      ch.ticks_before_start = 0;
    }
    ch.start_ns = now;
    ch.counting = ch.loaded;
  } else if (!is_gate_triggered(ch.mode)) {
    ch.ticks_before_start = elapsed_ticks(ch, now);
    ch.counting = false;
  }
  ch.gate = level;
  if (&ch == &channels_[0]) schedule_irq(ch, elapsed_ticks(ch, now));
}

void Pit8254::schedule_irq(Channel& ch, uint64_t now_ticks) {
  ch.next_irq_tick.reset();
  if (!ch.loaded || !ch.counting) return;
  if (is_periodic(ch.mode)) {
    // OUT rises at the end of every period.
    ch.next_irq_tick = (now_ticks / ch.reload + 1) * ch.reload;
  } else if (now_ticks < ch.reload) {
    // Modes 0 and 1 rise, 4 and 5 strobe, once at terminal count.
    ch.next_irq_tick = ch.reload;
  }
}

std::optional<uint64_t> Pit8254::next_deadline_ns() const {
  const Channel& ch = channels_[0];
  if (!ch.next_irq_tick || !ch.counting) return std::nullopt;
  return ns_of_tick(ch, *ch.next_irq_tick);
}

void Pit8254::advance_to(uint64_t now_ns) {
  Channel& ch = channels_[0];
  if (!ch.next_irq_tick || !ch.counting) return;
  const uint64_t now_ticks = elapsed_ticks(ch, now_ns);
  if (now_ticks < *ch.next_irq_tick) return;
  // However many periods passed, the guest sees one edge: lost ticks.
  irq0_.pulse();
  if (is_periodic(ch.mode)) {
    ch.next_irq_tick = (now_ticks / ch.reload + 1) * ch.reload;
  } else {
    ch.next_irq_tick.reset();
  }
}

void Pit8254::load(Channel& ch) {
  ch.loaded = true;
  ch.null_count = false;
  ch.triggered = false;
  ch.ticks_before_start = 0;
  ch.start_ns = clock_.now_ns();
  ch.counting = is_gate_triggered(ch.mode) ? false : ch.gate;
  if (&ch == &channels_[0]) schedule_irq(ch, 0);
}

void Pit8254::write_count(Channel& ch, uint8_t value) {
  uint32_t count;
  switch (ch.access) {
    case 1:
      count = value;
      break;
    case 2:
      count = static_cast<uint32_t>(value) << 8;
      break;
    default:
      if (!ch.write_msb_next) {
        ch.write_lsb = value;
        ch.write_msb_next = true;
        return;
      }
      ch.write_msb_next = false;
      count = ch.write_lsb | (static_cast<uint32_t>(value) << 8);
      break;
  }
  ch.reload = count == 0 ? 0x10000 : count;
  load(ch);
}

void Pit8254::latch_count(Channel& ch) {
  if (ch.latched_count) return;  // The first latch holds until read.
  ch.latched_count = count_at(ch, elapsed_ticks(ch, clock_.now_ns()));
  ch.latched_msb_next = ch.access == 2;
}

uint8_t Pit8254::status_of(const Channel& ch) const {
  return static_cast<uint8_t>((output(static_cast<unsigned>(&ch - channels_.data())) ? 0x80 : 0) |
                              (ch.null_count ? 0x40 : 0) | (ch.access << 4) | (ch.mode << 1));
}

void Pit8254::write_control(uint8_t value) {
  const unsigned select = value >> 6;
  if (select == 3) {  // Read-back: bits 1-3 select channels 0-2.
    for (unsigned i = 0; i < 3; ++i) {
      if ((value & (2u << i)) == 0) continue;
      Channel& ch = channels_[i];
      if ((value & 0x20) == 0) latch_count(ch);
      if ((value & 0x10) == 0 && !ch.latched_status) ch.latched_status = status_of(ch);
    }
    return;
  }
  Channel& ch = channels_[select];
  const uint8_t access = (value >> 4) & 3;
  if (access == 0) {
    latch_count(ch);
    return;
  }
  if ((value & 0x01) && !bcd_logged_) {
    bcd_logged_ = true;
    log_.note("pit: BCD counting is not supported; channel {} counts in binary", select);
  }
  ch.access = access;
  ch.mode = (value >> 1) & 7;
  if (ch.mode > 5) ch.mode -= 4;  // 6 and 7 are aliases of 2 and 3.
  ch.loaded = false;
  ch.null_count = true;
  ch.counting = false;
  ch.triggered = false;
  ch.write_msb_next = false;
  ch.read_msb_next = false;
  ch.latched_count.reset();
  ch.latched_status.reset();
  ch.next_irq_tick.reset();
}

uint8_t Pit8254::read_counter(Channel& ch) {
  if (ch.latched_status) {
    const uint8_t status = *ch.latched_status;
    ch.latched_status.reset();
    return status;
  }
  if (ch.latched_count) {
    const uint16_t latched = *ch.latched_count;
    const bool msb = ch.latched_msb_next;
    if (ch.access == 3 && !msb) {
      ch.latched_msb_next = true;
    } else {
      ch.latched_count.reset();
    }
    return static_cast<uint8_t>(msb ? latched >> 8 : latched);
  }
  const uint16_t count = count_at(ch, elapsed_ticks(ch, clock_.now_ns()));
  bool msb = ch.access == 2;
  if (ch.access == 3) {
    msb = ch.read_msb_next;
    ch.read_msb_next = !ch.read_msb_next;
  }
  return static_cast<uint8_t>(msb ? count >> 8 : count);
}

void Pit8254::read(uint64_t offset, std::span<uint8_t> data) {
  read_bytes(offset, kPortCount, data, [&](uint64_t port) -> uint8_t {
    if (port == 3) return 0xFF;  // The control register is write-only.
    return read_counter(channels_[port]);
  });
}

void Pit8254::write(uint64_t offset, std::span<const uint8_t> data) {
  write_bytes(offset, kPortCount, data, [&](uint64_t port, uint8_t value) {
    if (port == 3) {
      write_control(value);
    } else {
      write_count(channels_[port], value);
    }
  });
}

}  // namespace bt86
