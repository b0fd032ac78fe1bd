// x86 descriptors as they sit in the guest's GDT, LDT and IDT: decoding to
// the hidden parts of a segment register, gate decoding, and the encoding
// loaders and tests use to build tables. Pure functions of the 8 bytes; the
// checks a segment load performs on them live with the instructions that
// load segments.
#pragma once

#include <cstdint>

#include "monitor/cpu_state.h"

namespace bt86 {

namespace descriptor_type {
// Code/data (S=1) type bits.
inline constexpr uint8_t kAccessed = 1;
inline constexpr uint8_t kWritable = 2;    // Data.
inline constexpr uint8_t kReadable = 2;    // Code.
inline constexpr uint8_t kExpandDown = 4;  // Data.
inline constexpr uint8_t kConforming = 4;  // Code.
inline constexpr uint8_t kCode = 8;
// System (S=0) types.
inline constexpr uint8_t kTss16Available = 1;
inline constexpr uint8_t kLdt = 2;
inline constexpr uint8_t kTss16Busy = 3;
inline constexpr uint8_t kCallGate16 = 4;
inline constexpr uint8_t kTaskGate = 5;
inline constexpr uint8_t kInterruptGate16 = 6;
inline constexpr uint8_t kTrapGate16 = 7;
inline constexpr uint8_t kTss32Available = 9;
inline constexpr uint8_t kTss32Busy = 11;
inline constexpr uint8_t kCallGate32 = 12;
inline constexpr uint8_t kInterruptGate32 = 14;
inline constexpr uint8_t kTrapGate32 = 15;
}  // namespace descriptor_type

// The hidden part a segment register caches after loading this descriptor.
Segment decode_segment_descriptor(uint64_t raw, uint16_t selector);
// The inverse, for building tables; limit must be representable (byte
// granular below 1 MiB or a multiple of 4 KiB minus one with G=1).
uint64_t encode_segment_descriptor(const Segment& segment);

struct GateDescriptor {
  uint16_t selector = 0;
  uint32_t offset = 0;  // Zero for task gates.
  uint8_t type = 0;
  uint8_t dpl = 0;
  bool present = false;
  uint8_t parameter_count = 0;  // Call gates.
};

GateDescriptor decode_gate_descriptor(uint64_t raw);
uint64_t encode_gate_descriptor(const GateDescriptor& gate);

inline bool is_code(const Segment& s) {
  return s.s && (s.type & descriptor_type::kCode);
}
inline bool is_writable_data(const Segment& s) {
  return s.s && !(s.type & descriptor_type::kCode) && (s.type & descriptor_type::kWritable);
}
inline bool is_readable(const Segment& s) {
  return s.s && (!(s.type & descriptor_type::kCode) || (s.type & descriptor_type::kReadable));
}

enum class SegmentAccess { kRead, kWrite, kExecute };

// The byte offsets an access may touch through a loaded segment: it is
// allowed when every byte lies in [low, high]. 64-bit, so an access that
// runs past 4 GiB is out, and empty (low > high) when the segment cannot be
// used for that kind of access at all (null, not present, wrong type).
struct SegmentBounds {
  uint64_t low = 1;
  uint64_t high = 0;
  bool contains(uint32_t offset, uint32_t size) const {
    return offset >= low && uint64_t{offset} + size - 1 <= high;
  }
};

// A stack register (ESP, or EBP for enter and leave) as the offset into ss
// its implicit accesses use: all of it on a 32-bit stack, SP alone on a
// 16-bit one (B clear).
inline uint32_t stack_offset(const Segment& ss, uint32_t reg) {
  return ss.db ? reg : reg & 0xFFFFu;
}
// reg with that offset replaced: a 16-bit stack keeps the upper half.
inline uint32_t with_stack_offset(const Segment& ss, uint32_t reg, uint32_t offset) {
  return ss.db ? offset : (reg & 0xFFFF0000u) | (offset & 0xFFFFu);
}

// The limit alone (expand-down segments hold the offsets above the limit).
SegmentBounds limit_bounds(const Segment& s);
// The limit and the type and presence checks of an access of this kind.
SegmentBounds access_bounds(const Segment& s, SegmentAccess access);
// What an access through reg that fails those checks raises (error code 0).
inline uint8_t segment_fault_vector(SegReg reg) {
  return reg == SegReg::kSs ? vector::kSs : vector::kGp;
}

}  // namespace bt86
