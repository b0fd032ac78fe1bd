// How translated code reaches the guest's segments, derived from the hidden
// parts of the six segment registers: which of FS/GS goes through the host
// FS prefix, which registers are compensated (TranslationMode), and the
// checks compensated code reads (VcpuContext::segment_checks). The BT
// backend and the flat harness both take their translation mode from it.
#pragma once

#include <Zydis/Zydis.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "monitor/cpu_state.h"
#include "translator/translation_mode.h"
#include "translator/translation_unit.h"
#include "translator/vcpu_context.h"

namespace bt86 {

struct SegmentView {
  ZydisRegister fs_segment = ZYDIS_REGISTER_FS;
  uint32_t fs_base = 0;  // The guest base of fs_segment (0 if it is compensated).
  uint8_t compensated = 0;
  bool stack_16 = false;  // SS.B clear.
  VcpuContext::SegmentCheck checks[kNumSegRegs];

  void apply_to(TranslationMode& mode) const {
    mode.fs_segment = fs_segment;
    mode.compensated = compensated;
    mode.stack_16 = stack_16;
  }
  // Only what view_fs_gs() decides: the routing and FS's and GS's bits.
  void apply_fs_gs_to(TranslationMode& mode) const {
    constexpr uint8_t kFsGs = TranslationMode::segment_bit(ZYDIS_REGISTER_FS) |
                              TranslationMode::segment_bit(ZYDIS_REGISTER_GS);
    mode.fs_segment = fs_segment;
    mode.compensated = static_cast<uint8_t>((mode.compensated & ~kFsGs) | (compensated & kFsGs));
  }
  // The FS and GS checks, as VcpuContext::SegmentSwitch holds them.
  void copy_fs_gs_checks(VcpuContext::SegmentCheck (&out)[2]) const {
    out[0] = checks[static_cast<int>(SegReg::kFs)];
    out[1] = checks[static_cast<int>(SegReg::kGs)];
  }
};

SegmentView view_segments(std::span<const Segment, kNumSegRegs> segments, uint8_t cpl);
// The code segment translations are keyed on: CS's base, limit and (D clear)
// 16-bit default size.
inline CodeSegment code_segment_of(const Segment& cs) {
  return {cs.base, cs.limit, !cs.db};
}
// Only the parts FS and GS decide: fs_segment, fs_base, their checks and
// their bits of compensated (what an FS/GS switch changes).
SegmentView view_fs_gs(const Segment& fs, const Segment& gs, uint8_t cpl);

// The last few views computed from equal inputs: the BT backend asks before
// every cache entry, and a system call goes from the user's segments to the
// kernel's (two FS loads on the way) and back, so one remembered view would
// always be the wrong one.
template <typename Key>
class RecentSegmentViews {
 public:
  template <typename Compute>
  const SegmentView& get(const Key& key, Compute compute) {
    for (const Entry& e : entries_) {
      if (e.valid && e.key == key) return e.view;
    }
    Entry& e = entries_[next_];
    next_ = (next_ + 1) % entries_.size();
    e = {key, compute(), true};
    return e.view;
  }

 private:
  struct Entry {
    Key key{};
    SegmentView view;
    bool valid = false;
  };
  std::array<Entry, 4> entries_{};
  size_t next_ = 0;
};

}  // namespace bt86
