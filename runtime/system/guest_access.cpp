#include "runtime/system/guest_access.h"

#include <fmt/format.h>

#include <cstring>

#include "runtime/system/guest_event.h"
#include "shadow/descriptor.h"

namespace bt86 {
namespace {

SystemOutcome from_fault(const LinearAccessFault& fault) {
  if (fault.not_ram) {
    return SystemOutcome::shutdown(fmt::format(
        "the CPU's own access to linear address {:#x} reaches no RAM (bt86 models no device "
        "behind descriptor tables, TSS or stacks)",
        fault.linear));
  }
  SystemOutcome o = SystemOutcome::fault(vector::kPf, fault.error_code);
  o.exception.fault_address = fault.linear;
  return o;
}

}  // namespace

SystemOutcome read_linear(SystemContext& ctx, uint32_t linear, std::span<uint8_t> out, bool user) {
  if (auto fault = ctx.linear_memory().read(paging_mode_of(ctx.cpu()), linear, out, user)) {
    return from_fault(*fault);
  }
  return SystemOutcome::ok();
}

SystemOutcome write_linear(SystemContext& ctx, uint32_t linear, std::span<const uint8_t> data,
                           bool user) {
  const LinearWriteResult r =
      ctx.linear_memory().write(paging_mode_of(ctx.cpu()), linear, data, user);
  if (r.fault) return from_fault(*r.fault);
  if (r.traced != 0) {
    ctx.traced_memory_written(linear, static_cast<uint32_t>(data.size()), r.traced);
  }
  return SystemOutcome::ok();
}

SystemOutcome read_linear_value(SystemContext& ctx, uint32_t linear, int size, uint32_t* value,
                                bool user) {
  uint8_t bytes[4] = {};
  SystemOutcome o = read_linear(ctx, linear, std::span<uint8_t>(bytes, size), user);
  if (!o.continues()) return o;
  *value = 0;
  std::memcpy(value, bytes, size);
  return o;
}

SystemOutcome write_linear_value(SystemContext& ctx, uint32_t linear, int size, uint32_t value,
                                 bool user) {
  uint8_t bytes[4];
  std::memcpy(bytes, &value, 4);
  return write_linear(ctx, linear, std::span<const uint8_t>(bytes, size), user);
}

SystemOutcome check_segment_access(const Segment& seg, SegReg reg, uint32_t offset, uint32_t size,
                                   SegmentAccess access) {
  if (access_bounds(seg, access).contains(offset, size)) return SystemOutcome::ok();
  return SystemOutcome::fault(segment_fault_vector(reg), 0);
}

SystemOutcome read_segmented(SystemContext& ctx, SegReg reg, uint32_t offset, int size,
                             uint32_t* value) {
  const Segment& seg = ctx.cpu().segment(reg);
  SystemOutcome o = check_segment_access(seg, reg, offset, size, SegmentAccess::kRead);
  if (!o.continues()) return o;
  return read_linear_value(ctx, seg.base + offset, size, value, ctx.cpu().cpl() == 3);
}

SystemOutcome write_segmented(SystemContext& ctx, SegReg reg, uint32_t offset, int size,
                              uint32_t value) {
  const Segment& seg = ctx.cpu().segment(reg);
  SystemOutcome o = check_segment_access(seg, reg, offset, size, SegmentAccess::kWrite);
  if (!o.continues()) return o;
  return write_linear_value(ctx, seg.base + offset, size, value, ctx.cpu().cpl() == 3);
}

StackAccess StackAccess::current(SystemContext& ctx) {
  const CpuState& cpu = ctx.cpu();
  return StackAccess(ctx, cpu.segment(SegReg::kSs), cpu.reg(Gpr::kEsp), cpu.cpl() == 3, 0);
}

void StackAccess::set_offset(uint32_t offset) {
  esp_ = with_stack_offset(ss_, esp_, offset);
}

SystemOutcome StackAccess::push(uint32_t value, int size) {
  const uint32_t at = stack_offset(ss_, offset() - size);
  if (ss_.unusable || !within_limit(ss_, at, size)) {
    return SystemOutcome::fault(vector::kSs, fault_error_code_);
  }
  SystemOutcome o = write_linear_value(ctx_, ss_.base + at, size, value, user_);
  if (!o.continues()) return o;
  set_offset(at);
  return o;
}

SystemOutcome StackAccess::pop(int size, uint32_t* value) {
  const uint32_t at = offset();
  if (ss_.unusable || !within_limit(ss_, at, size)) {
    return SystemOutcome::fault(vector::kSs, fault_error_code_);
  }
  SystemOutcome o = read_linear_value(ctx_, ss_.base + at, size, value, user_);
  if (!o.continues()) return o;
  set_offset(at + size);
  return o;
}

void StackAccess::release(uint32_t bytes) {
  set_offset(offset() + bytes);
}

}  // namespace bt86
