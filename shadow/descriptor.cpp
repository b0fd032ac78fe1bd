#include "shadow/descriptor.h"

namespace bt86 {

Segment decode_segment_descriptor(uint64_t raw, uint16_t selector) {
  Segment s;
  s.selector = selector;
  s.base = static_cast<uint32_t>(((raw >> 16) & 0xFFFFFF) | ((raw >> 32) & 0xFF000000));
  uint32_t limit = static_cast<uint32_t>((raw & 0xFFFF) | ((raw >> 32) & 0xF0000));
  s.type = (raw >> 40) & 0xF;
  s.s = (raw >> 44) & 1;
  s.dpl = (raw >> 45) & 3;
  s.present = (raw >> 47) & 1;
  s.avl = (raw >> 52) & 1;
  s.db = (raw >> 54) & 1;
  s.granularity = (raw >> 55) & 1;
  if (s.granularity) limit = (limit << 12) | 0xFFF;
  s.limit = limit;
  s.unusable = false;
  return s;
}

uint64_t encode_segment_descriptor(const Segment& s) {
  const uint32_t limit = s.granularity ? s.limit >> 12 : s.limit;
  uint64_t raw = (limit & 0xFFFF) | (static_cast<uint64_t>(limit & 0xF0000) << 32);
  raw |= static_cast<uint64_t>(s.base & 0xFFFFFF) << 16;
  raw |= static_cast<uint64_t>(s.base & 0xFF000000) << 32;
  raw |= static_cast<uint64_t>(s.type & 0xF) << 40;
  raw |= static_cast<uint64_t>(s.s) << 44;
  raw |= static_cast<uint64_t>(s.dpl & 3) << 45;
  raw |= static_cast<uint64_t>(s.present) << 47;
  raw |= static_cast<uint64_t>(s.avl) << 52;
  raw |= static_cast<uint64_t>(s.db) << 54;
  raw |= static_cast<uint64_t>(s.granularity) << 55;
  return raw;
}

GateDescriptor decode_gate_descriptor(uint64_t raw) {
  GateDescriptor g;
  g.selector = static_cast<uint16_t>(raw >> 16);
  g.type = (raw >> 40) & 0xF;
  g.dpl = (raw >> 45) & 3;
  g.present = (raw >> 47) & 1;
  g.parameter_count = (raw >> 32) & 0x1F;
  if (g.type != descriptor_type::kTaskGate) {
    g.offset = static_cast<uint32_t>((raw & 0xFFFF) | ((raw >> 32) & 0xFFFF0000));
  }
  return g;
}

uint64_t encode_gate_descriptor(const GateDescriptor& g) {
  uint64_t raw = (g.offset & 0xFFFF) | (static_cast<uint64_t>(g.offset & 0xFFFF0000) << 32);
  raw |= static_cast<uint64_t>(g.selector) << 16;
  raw |= static_cast<uint64_t>(g.parameter_count & 0x1F) << 32;
  raw |= static_cast<uint64_t>(g.type & 0xF) << 40;
  raw |= static_cast<uint64_t>(g.dpl & 3) << 45;
  raw |= static_cast<uint64_t>(g.present) << 47;
  return raw;
}

SegmentBounds limit_bounds(const Segment& s) {
  const bool expand_down =
      s.s && !(s.type & descriptor_type::kCode) && (s.type & descriptor_type::kExpandDown);
  if (!expand_down) return {0, s.limit};
  return {uint64_t{s.limit} + 1, s.db ? 0xFFFFFFFFull : 0xFFFFull};
}

SegmentBounds access_bounds(const Segment& s, SegmentAccess access) {
  if (s.unusable || !s.present) return {};
  switch (access) {
    case SegmentAccess::kRead:
      if (!is_readable(s)) return {};
      break;
    case SegmentAccess::kWrite:
      if (!is_writable_data(s)) return {};
      break;
    case SegmentAccess::kExecute:
      if (!is_code(s)) return {};
      break;
  }
  return limit_bounds(s);
}

}  // namespace bt86
