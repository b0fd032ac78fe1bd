// Guest linear memory as the VMM itself reads and writes it: when a callout
// builds an exception frame, reads a descriptor or the TSS, or emulates a
// store that hit a traced page.
//
// Every access goes through the guest page-table walk with the privilege and
// access type the emulated instruction has (so it faults exactly where the
// guest would, with the hardware's #PF error code and CR2), sets accessed and
// dirty bits, and — for writes — reports the physical range to the shadow
// MMU, so the VMM's own stores keep shadows coherent exactly like guest
// stores do. Accesses may cross page boundaries; a multi-page write checks
// every page before it stores a byte, as the hardware does.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "monitor/guest_memory.h"
#include "shadow/guest_page_walker.h"
#include "shadow/shadow_mmu.h"
#include "shadow/trace_kind.h"

namespace bt86 {

struct LinearAccessFault {
  uint32_t linear = 0;      // CR2.
  uint32_t error_code = 0;  // #PF error code.
  bool not_ram = false;     // The page maps a physical address outside RAM.
};

struct LinearWriteResult {
  std::optional<LinearAccessFault> fault;
  TraceKinds traced = 0;  // Trace kinds of the frames written (for derived state).
};

class GuestLinearMemory {
 public:
  GuestLinearMemory(GuestMemory& memory, ShadowMmu& mmu) : memory_(memory), mmu_(mmu) {}

  // paging == nullopt: paging disabled, linear == physical.
  std::optional<LinearAccessFault> read(const std::optional<PagingMode>& paging, uint32_t linear,
                                        std::span<uint8_t> out, bool user);
  LinearWriteResult write(const std::optional<PagingMode>& paging, uint32_t linear,
                          std::span<const uint8_t> data, bool user);

 private:
  struct Piece {
    uint32_t physical;
    uint32_t length;
  };
  std::optional<LinearAccessFault> translate_all(const std::optional<PagingMode>& paging,
                                                 uint32_t linear, uint32_t length, AccessType type,
                                                 bool user, Piece* pieces, int& piece_count);

  GuestMemory& memory_;
  ShadowMmu& mmu_;
};

}  // namespace bt86
