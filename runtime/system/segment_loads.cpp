#include "runtime/system/segment_loads.h"

#include "runtime/system/guest_event.h"

namespace bt86 {
namespace {

bool is_conforming_code(const Segment& s) {
  return is_code(s) && (s.type & descriptor_type::kConforming);
}

// Reads the descriptor and decodes it, marking it accessed once every check
// passed (the caller runs its checks on the decoded form first).
SystemOutcome fetch(SystemContext& ctx, uint16_t selector, uint32_t ext, uint8_t vec,
                    DescriptorSlot* slot, Segment* seg) {
  SystemOutcome o = read_descriptor(ctx, selector, ext, slot, vec);
  if (!o.continues()) return o;
  *seg = decode_segment_descriptor(slot->raw, selector);
  return o;
}

SystemOutcome finish(SystemContext& ctx, DescriptorSlot& slot, Segment* seg) {
  SystemOutcome o = mark_accessed(ctx, slot);
  if (!o.continues()) return o;
  seg->type |= descriptor_type::kAccessed;
  return o;
}

}  // namespace

Segment null_segment(uint16_t selector) {
  Segment s;
  s.selector = selector;
  s.unusable = true;
  return s;
}

SystemOutcome validate_stack_segment(SystemContext& ctx, uint16_t selector, uint8_t cpl,
                                     uint8_t check_vector, uint32_t ext, Segment* out) {
  if (is_null_selector(selector)) {
    return SystemOutcome::fault(check_vector, check_vector == vector::kGp ? 0 : ext);
  }
  const uint32_t error = selector_error(selector, ext);
  DescriptorSlot slot;
  Segment seg;
  SystemOutcome o = fetch(ctx, selector, ext, check_vector, &slot, &seg);
  if (!o.continues()) return o;
  if ((selector & 3) != cpl || seg.dpl != cpl || !is_writable_data(seg)) {
    return SystemOutcome::fault(check_vector, error);
  }
  if (!seg.present) return SystemOutcome::fault(vector::kSs, error);
  o = finish(ctx, slot, &seg);
  if (o.continues()) *out = seg;
  return o;
}

SystemOutcome load_segment_register(SystemContext& ctx, SegReg reg, uint16_t selector) {
  CpuState& cpu = ctx.cpu();
  const uint8_t cpl = cpu.cpl();
  Segment seg;
  if (reg == SegReg::kSs) {
    SystemOutcome o = validate_stack_segment(ctx, selector, cpl, vector::kGp, 0, &seg);
    if (!o.continues()) return o;
  } else if (is_null_selector(selector)) {
    seg = null_segment(selector);
  } else {
    DescriptorSlot slot;
    SystemOutcome o = fetch(ctx, selector, 0, vector::kGp, &slot, &seg);
    if (!o.continues()) return o;
    const uint32_t error = selector_error(selector, 0);
    if (!is_readable(seg)) return SystemOutcome::fault(vector::kGp, error);
    if (!is_conforming_code(seg) && ((selector & 3) > seg.dpl || cpl > seg.dpl)) {
      return SystemOutcome::fault(vector::kGp, error);
    }
    if (!seg.present) return SystemOutcome::fault(vector::kNp, error);
    o = finish(ctx, slot, &seg);
    if (!o.continues()) return o;
  }
  cpu.segment(reg) = seg;
  ctx.segments_changed();
  return SystemOutcome::ok();
}

SystemOutcome validate_far_code_segment(SystemContext& ctx, uint16_t selector, Segment* out) {
  if (is_null_selector(selector)) return SystemOutcome::fault(vector::kGp, 0);
  const uint8_t cpl = ctx.cpu().cpl();
  const uint32_t error = selector_error(selector, 0);
  DescriptorSlot slot;
  Segment seg;
  SystemOutcome o = fetch(ctx, selector, 0, vector::kGp, &slot, &seg);
  if (!o.continues()) return o;
  if (!is_code(seg)) return SystemOutcome::fault(vector::kGp, error);
  if (is_conforming_code(seg) ? seg.dpl > cpl : ((selector & 3) > cpl || seg.dpl != cpl)) {
    return SystemOutcome::fault(vector::kGp, error);
  }
  if (!seg.present) return SystemOutcome::fault(vector::kNp, error);
  o = finish(ctx, slot, &seg);
  if (!o.continues()) return o;
  seg.selector = static_cast<uint16_t>((selector & 0xFFFC) | cpl);
  seg.dpl = cpl;
  *out = seg;
  return o;
}

SystemOutcome validate_return_code_segment(SystemContext& ctx, uint16_t selector, Segment* out) {
  if (is_null_selector(selector)) return SystemOutcome::fault(vector::kGp, 0);
  const uint8_t cpl = ctx.cpu().cpl();
  const uint8_t rpl = selector & 3;
  const uint32_t error = selector_error(selector, 0);
  DescriptorSlot slot;
  Segment seg;
  SystemOutcome o = fetch(ctx, selector, 0, vector::kGp, &slot, &seg);
  if (!o.continues()) return o;
  if (!is_code(seg) || rpl < cpl) return SystemOutcome::fault(vector::kGp, error);
  if (is_conforming_code(seg) ? seg.dpl > rpl : seg.dpl != rpl) {
    return SystemOutcome::fault(vector::kGp, error);
  }
  if (!seg.present) return SystemOutcome::fault(vector::kNp, error);
  o = finish(ctx, slot, &seg);
  if (!o.continues()) return o;
  seg.dpl = rpl;
  *out = seg;
  return o;
}

void null_inaccessible_data_segments(CpuState& cpu) {
  for (SegReg r : {SegReg::kEs, SegReg::kDs, SegReg::kFs, SegReg::kGs}) {
    Segment& s = cpu.segment(r);
    if (s.unusable) continue;
    const bool data_or_nonconforming = !is_code(s) || !(s.type & descriptor_type::kConforming);
    if (data_or_nonconforming && s.dpl < cpu.cpl()) s = null_segment(0);
  }
}

}  // namespace bt86
