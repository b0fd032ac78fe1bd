#include "translator/fault_recovery.h"

namespace bt86 {

const InstructionMap* TranslationUnit::instruction_at_host(uint64_t host_address) const {
  const uint64_t offset = host_address - host_start;
  for (const InstructionMap& m : instructions) {
    if (offset >= m.host_begin && offset < m.host_end) return &m;
  }
  return nullptr;
}

bool recover_guest_state(const TranslationUnit& unit, uint64_t host_rip,
                         const HostRegisterFile& regs, uint64_t window_base,
                         RecoveredGuestState* out) {
  const InstructionMap* m = unit.instruction_at_host(host_rip);
  if (m == nullptr) return false;
  for (int i = 0; i < 8; ++i) out->gpr[i] = static_cast<uint32_t>(regs.gpr[i]);
  out->eip = m->guest_eip;
  out->rflags = regs.rflags;
  out->kind = m->kind;
  const uint64_t offset = host_rip - unit.host_start;
  for (const HostRange& r : m->recoveries) {
    if (offset < r.begin || offset >= r.end) continue;
    switch (r.recovery.kind) {
      case Recovery::Kind::kNone:
        break;
      case Recovery::Kind::kEspAdjust:
        out->gpr[4] += static_cast<uint32_t>(r.recovery.esp_adjust);
        break;
      case Recovery::Kind::kSpAdjust:
        out->gpr[4] = (out->gpr[4] & 0xFFFF0000u) |
                      ((out->gpr[4] + static_cast<uint32_t>(r.recovery.esp_adjust)) & 0xFFFFu);
        break;
      case Recovery::Kind::kCompleted:
        out->eip = m->guest_eip + m->guest_length;
        break;
      case Recovery::Kind::kStringWindowBased:
        out->gpr[6] = static_cast<uint32_t>(regs.gpr[6] - window_base);
        out->gpr[7] = static_cast<uint32_t>(regs.gpr[7] - window_base);
        break;
      case Recovery::Kind::kStringSourceWindowBased:
        out->gpr[6] = static_cast<uint32_t>(regs.gpr[6] - window_base);
        break;
      case Recovery::Kind::kStringDestinationWindowBased:
        out->gpr[7] = static_cast<uint32_t>(regs.gpr[7] - window_base);
        break;
      case Recovery::Kind::kBorrowedRegister:
        out->gpr[r.recovery.borrowed] = static_cast<uint32_t>(regs.r13);
        break;
    }
  }
  return true;
}

}  // namespace bt86
