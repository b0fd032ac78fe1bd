#include "runtime/segment_view.h"

#include "shadow/descriptor.h"

namespace bt86 {
namespace {

// The bounds in the context's 32-bit form: an empty range is low 1, high 0
// (an expand-down segment with limit 4 GiB - 1 would otherwise need low 2^32).
void store_bounds(const SegmentBounds& b, uint32_t* low, uint32_t* high) {
  if (b.low > b.high) {
    *low = 1;
    *high = 0;
    return;
  }
  *low = static_cast<uint32_t>(b.low);
  *high = static_cast<uint32_t>(b.high);
}

bool full(uint32_t low, uint32_t high) {
  return low == 0 && high == 0xFFFFFFFFu;
}

VcpuContext::SegmentCheck check_of(const Segment& s) {
  VcpuContext::SegmentCheck c;
  c.base = s.unusable ? 0 : s.base;
  store_bounds(access_bounds(s, SegmentAccess::kRead), &c.read_low, &c.read_high);
  store_bounds(access_bounds(s, SegmentAccess::kWrite), &c.write_low, &c.write_high);
  return c;
}

bool flat_but_for_base(const VcpuContext::SegmentCheck& c) {
  return full(c.read_low, c.read_high) && full(c.write_low, c.write_high);
}

}  // namespace

SegmentView view_fs_gs(const Segment& fs, const Segment& gs, uint8_t cpl) {
  SegmentView v;
  const bool fs_based = !fs.unusable && fs.base != 0;
  const bool gs_based = !gs.unusable && gs.base != 0;
  // Linux: the kernel's per-CPU area behind FS, user TLS behind GS.
  const bool route_gs = gs_based && (!fs_based || cpl == 3);
  v.fs_segment = route_gs ? ZYDIS_REGISTER_GS : ZYDIS_REGISTER_FS;
  for (SegReg r : {SegReg::kFs, SegReg::kGs}) {
    const int i = static_cast<int>(r);
    const VcpuContext::SegmentCheck& c = v.checks[i] = check_of(r == SegReg::kFs ? fs : gs);
    const bool routed = route_gs == (r == SegReg::kGs);
    if (routed && flat_but_for_base(c)) {
      v.fs_base = c.base;
    } else if (c.base != 0 || !flat_but_for_base(c)) {
      v.compensated |= static_cast<uint8_t>(1u << i);
    }
  }
  return v;
}

SegmentView view_segments(std::span<const Segment, kNumSegRegs> segments, uint8_t cpl) {
  SegmentView v = view_fs_gs(segments[static_cast<int>(SegReg::kFs)],
                             segments[static_cast<int>(SegReg::kGs)], cpl);
  for (SegReg r : {SegReg::kEs, SegReg::kCs, SegReg::kSs, SegReg::kDs}) {
    const int i = static_cast<int>(r);
    const VcpuContext::SegmentCheck& c = v.checks[i] = check_of(segments[i]);
    // CS is never writable: the translator turns stores through it into #GP.
    const bool flat =
        c.base == 0 && (r == SegReg::kCs ? full(c.read_low, c.read_high) : flat_but_for_base(c));
    // A 16-bit stack wraps SP, which the compensated stack accesses do.
    if (r == SegReg::kSs && !segments[i].unusable && !segments[i].db) v.stack_16 = true;
    if (!flat || (r == SegReg::kSs && v.stack_16)) v.compensated |= static_cast<uint8_t>(1u << i);
  }
  return v;
}

}  // namespace bt86
