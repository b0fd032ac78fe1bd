// Host fault -> guest state, in one place.
//
// Given the unit a faulting host RIP lies in and the host registers at the
// fault, rebuild the guest registers, flags and EIP at the boundary of the
// guest instruction that faulted, applying that instruction's recovery
// recipe for the sub-range the fault hit. Runs in signal context: no
// allocation, no locks.
#pragma once

#include <cstdint>

#include "translator/translation_unit.h"

namespace bt86 {

struct HostRegisterFile {
  uint64_t gpr[8];  // RAX..RDI in x86 encoding order (RSP = index 4).
  uint64_t rflags;
  uint64_t r13;  // Where compensated accesses park a borrowed guest register.
};

struct RecoveredGuestState {
  uint32_t gpr[8];
  uint32_t eip;
  uint64_t rflags;  // Host RFLAGS image; kHostGuestFlags are the guest's.
  TranslationKind kind;
};

bool recover_guest_state(const TranslationUnit& unit, uint64_t host_rip,
                         const HostRegisterFile& regs, uint64_t window_base,
                         RecoveredGuestState* out);

}  // namespace bt86
