#include "monitor/cpu_state.h"

#include <cstring>

namespace bt86 {

FpuState FpuState::reset_state() {
  FpuState s;
  const uint16_t fcw = 0x037F;
  const uint32_t mxcsr = 0x1F80;
  std::memcpy(&s.fxsave[0], &fcw, sizeof fcw);
  std::memcpy(&s.fxsave[24], &mxcsr, sizeof mxcsr);
  const uint32_t mxcsr_mask = 0xFFFF;
  std::memcpy(&s.fxsave[28], &mxcsr_mask, sizeof mxcsr_mask);
  return s;
}

Segment flat_segment(uint16_t selector, uint8_t type, uint8_t dpl) {
  Segment s;
  s.selector = selector;
  s.base = 0;
  s.limit = 0xFFFFFFFF;
  s.type = type;
  s.s = true;
  s.dpl = dpl;
  s.present = true;
  s.db = true;
  s.granularity = true;
  return s;
}

}  // namespace bt86
