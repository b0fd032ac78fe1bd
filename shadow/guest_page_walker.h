// The guest page-table walker: 32-bit (non-PAE) x86 paging, 4 KiB and 4 MiB
// pages, read straight from guest-physical memory.
//
// It is the single source of truth for what a guest linear address means:
// the shadow MMU fills its windows from it on hidden page faults, the BT
// backend turns its faults into guest #PF, and the debugger's `pt` command
// prints it. Semantics follow the SDM (Vol. 3A 4.3, 4.6, 4.8):
// - user accesses need U=1 at both levels; writes need R/W=1 at both levels
//   for user accesses, and for supervisor accesses when CR0.WP=1;
// - a 4 MiB page needs CR4.PSE; without PSE-36 its bits 21:13 are reserved;
// - accessed bits are set in every entry of a successful walk, the dirty bit
//   in the final entry on a write; a faulting walk changes nothing;
// - the #PF error code has P (protection vs not present), W/R, U/S and RSVD.
// A paging-structure entry outside guest RAM reads as 0 (not present): with
// no device behind it there is nothing a guest could have meant.
#pragma once

#include <cstdint>
#include <optional>

#include "monitor/guest_memory.h"

namespace bt86 {

struct PagingMode {
  uint32_t cr3 = 0;
  bool pse = false;  // CR4.PSE: 4 MiB pages allowed.
  bool pge = false;  // CR4.PGE: global bit honoured.
  bool wp = false;   // CR0.WP: supervisor writes obey R/W.
};

enum class AccessType { kRead, kWrite, kExecute };

struct PageAccessRequest {
  AccessType type = AccessType::kRead;
  bool user = false;  // CPL 3 (or an implicit supervisor access if false).
};

namespace pf_error {
inline constexpr uint32_t kPresent = 1u << 0;
inline constexpr uint32_t kWrite = 1u << 1;
inline constexpr uint32_t kUser = 1u << 2;
inline constexpr uint32_t kReserved = 1u << 3;
}  // namespace pf_error

namespace pte {
inline constexpr uint32_t kPresent = 1u << 0;
inline constexpr uint32_t kWritable = 1u << 1;
inline constexpr uint32_t kUser = 1u << 2;
inline constexpr uint32_t kAccessed = 1u << 5;
inline constexpr uint32_t kDirty = 1u << 6;
inline constexpr uint32_t kPageSize = 1u << 7;  // In a PDE.
inline constexpr uint32_t kGlobal = 1u << 8;
inline constexpr uint32_t kLargePageReserved = 0x003FE000;  // Bits 21:13 of a 4 MiB PDE.
}  // namespace pte

// A successful translation, and the facts the shadow MMU derives mappings
// and tracing from.
struct PageTranslation {
  uint32_t physical = 0;     // Of the accessed byte.
  uint32_t page_linear = 0;  // Linear base of the page (4 KiB or 4 MiB aligned).
  uint32_t page_physical = 0;
  uint32_t page_size = 0;  // 4096 or 4 MiB.
  bool writable = false;   // For this request's privilege (WP and U/S folded in).
  bool user = false;       // U=1 at every level.
  bool global = false;     // G=1 and CR4.PGE.
  bool dirty = false;      // D=1 in the final entry (after this walk).
  // A=1 at every level before this walk: a hardware walk would set no bit.
  bool accessed = false;
  uint32_t pde_address = 0;
  std::optional<uint32_t> pte_address;  // Absent for 4 MiB pages.
};

struct PageWalkResult {
  std::optional<PageTranslation> translation;
  uint32_t error_code = 0;  // When translation is absent: the #PF error code.

  bool ok() const { return translation.has_value(); }
};

class GuestPageWalker {
 public:
  explicit GuestPageWalker(GuestMemory& memory) : memory_(memory) {}

  // Translates and updates accessed/dirty bits as the hardware would.
  PageWalkResult translate(const PagingMode& mode, uint32_t linear, PageAccessRequest request);
  // Same answer without touching guest memory (debugger, diagnostics).
  PageWalkResult probe(const PagingMode& mode, uint32_t linear, PageAccessRequest request) const;

 private:
  PageWalkResult walk(const PagingMode& mode, uint32_t linear, PageAccessRequest request,
                      bool update_bits) const;
  uint32_t read_entry(uint32_t address) const;
  void set_bits(uint32_t address, uint32_t entry, uint32_t bits) const;

  GuestMemory& memory_;
};

}  // namespace bt86
