// Guest memory as the emulated system instructions touch it: linear accesses
// through SystemContext::linear_memory() with the current paging mode, the
// segment checks of segment-relative accesses (Vol. 3A 5.3), and the stack.
//
// Invariants:
// - Every helper returns SystemOutcome; anything but kContinue is returned
//   unchanged by the caller. A page fault carries CR2 in fault_address; a
//   page that maps no RAM is a kShutdown (bt86 has no device the CPU's own
//   accesses could reach).
// - Nothing here changes CpuState: stack helpers work on a copy of ESP that
//   the caller commits once the whole instruction has succeeded, so a fault
//   part-way leaves registers as they were (stores below ESP may remain, as
//   on hardware).
// - Stores that hit traced frames are reported to traced_memory_written().
#pragma once

#include <cstdint>
#include <span>

#include "monitor/cpu_state.h"
#include "runtime/system/system_context.h"
#include "shadow/descriptor.h"

namespace bt86 {

SystemOutcome read_linear(SystemContext& ctx, uint32_t linear, std::span<uint8_t> out, bool user);
SystemOutcome write_linear(SystemContext& ctx, uint32_t linear, std::span<const uint8_t> data,
                           bool user);
// size is 1, 2 or 4; the value is zero-extended (read) or truncated (write).
SystemOutcome read_linear_value(SystemContext& ctx, uint32_t linear, int size, uint32_t* value,
                                bool user);
SystemOutcome write_linear_value(SystemContext& ctx, uint32_t linear, int size, uint32_t value,
                                 bool user);

// The limit and type checks of an access of size bytes at offset within seg.
// Failures are #SS(0) for SS and #GP(0) for any other register.
SystemOutcome check_segment_access(const Segment& seg, SegReg reg, uint32_t offset, uint32_t size,
                                   SegmentAccess access);
// Whether [offset, offset + size) lies within the segment's limit.
inline bool within_limit(const Segment& seg, uint32_t offset, uint32_t size) {
  return limit_bounds(seg).contains(offset, size);
}

// Segment-relative data accesses at the current privilege.
SystemOutcome read_segmented(SystemContext& ctx, SegReg reg, uint32_t offset, int size,
                             uint32_t* value);
SystemOutcome write_segmented(SystemContext& ctx, SegReg reg, uint32_t offset, int size,
                              uint32_t value);

// Pushes onto (or pops from) a stack that is not yet, or no longer, SS:ESP:
// an event frame on the new privilege level's stack, or the current stack
// on behalf of an instruction that commits ESP only when it succeeds.
// Limit violations raise #SS(fault_error_code).
class StackAccess {
 public:
  StackAccess(SystemContext& ctx, const Segment& ss, uint32_t esp, bool user,
              uint32_t fault_error_code)
      : ctx_(ctx), ss_(ss), esp_(esp), user_(user), fault_error_code_(fault_error_code) {}
  // The current stack at the current privilege level; #SS(0) on limit errors.
  static StackAccess current(SystemContext& ctx);

  SystemOutcome push(uint32_t value, int size);
  SystemOutcome pop(int size, uint32_t* value);
  // Skips bytes (the imm16 of ret far), without reading them.
  void release(uint32_t bytes);
  // The stack pointer after the pushes and pops, with SP-only update for a
  // 16-bit stack segment (the upper half of ESP kept).
  uint32_t esp() const { return esp_; }

 private:
  uint32_t offset() const { return stack_offset(ss_, esp_); }
  void set_offset(uint32_t offset);

  SystemContext& ctx_;
  Segment ss_;
  uint32_t esp_;
  bool user_;
  uint32_t fault_error_code_;
};

}  // namespace bt86
