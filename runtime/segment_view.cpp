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

}  // namespace

SegmentView view_segments(std::span<const Segment, kNumSegRegs> segments, uint8_t cpl) {
  SegmentView v;
  const Segment& fs = segments[static_cast<int>(SegReg::kFs)];
  const Segment& gs = segments[static_cast<int>(SegReg::kGs)];
  const bool fs_based = !fs.unusable && fs.base != 0;
  const bool gs_based = !gs.unusable && gs.base != 0;
  // Linux: the kernel's per-CPU area behind FS, user TLS behind GS.
  const SegReg routed = gs_based && (!fs_based || cpl == 3) ? SegReg::kGs : SegReg::kFs;
  v.fs_segment = routed == SegReg::kGs ? ZYDIS_REGISTER_GS : ZYDIS_REGISTER_FS;
  for (int i = 0; i < kNumSegRegs; ++i) {
    const Segment& s = segments[i];
    VcpuContext::SegmentCheck& c = v.checks[i];
    c.base = s.unusable ? 0 : s.base;
    store_bounds(access_bounds(s, SegmentAccess::kRead), &c.read_low, &c.read_high);
    store_bounds(access_bounds(s, SegmentAccess::kWrite), &c.write_low, &c.write_high);
    const bool reads_flat = full(c.read_low, c.read_high);
    const bool writes_flat = full(c.write_low, c.write_high);
    bool compensate;
    if (static_cast<SegReg>(i) == SegReg::kCs) {
      // Never writable: the translator turns stores through CS into #GP.
      compensate = c.base != 0 || !reads_flat;
    } else if (static_cast<SegReg>(i) == routed) {
      compensate = !reads_flat || !writes_flat;
      if (!compensate) v.fs_base = c.base;
    } else {
      compensate = c.base != 0 || !reads_flat || !writes_flat;
    }
    if (compensate) v.compensated |= static_cast<uint8_t>(1u << i);
  }
  return v;
}

}  // namespace bt86
