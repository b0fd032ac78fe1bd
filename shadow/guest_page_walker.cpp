#include "shadow/guest_page_walker.h"

namespace bt86 {
namespace {

constexpr uint32_t kFrameMask = 0xFFFFF000;
constexpr uint32_t kLargeFrameMask = 0xFFC00000;
constexpr uint32_t kLargePageSize = 4u << 20;

uint32_t access_error_bits(PageAccessRequest request) {
  uint32_t bits = 0;
  if (request.type == AccessType::kWrite) bits |= pf_error::kWrite;
  if (request.user) bits |= pf_error::kUser;
  return bits;
}

}  // namespace

uint32_t GuestPageWalker::read_entry(uint32_t address) const {
  return memory_.contains(address, 4) ? memory_.read_u32(address) : 0;
}

void GuestPageWalker::set_bits(uint32_t address, uint32_t entry, uint32_t bits) const {
  if ((entry & bits) != bits && memory_.contains(address, 4)) {
    memory_.write_u32(address, entry | bits);
  }
}

PageWalkResult GuestPageWalker::translate(const PagingMode& mode, uint32_t linear,
                                          PageAccessRequest request) {
  return walk(mode, linear, request, true);
}

PageWalkResult GuestPageWalker::probe(const PagingMode& mode, uint32_t linear,
                                      PageAccessRequest request) const {
  return walk(mode, linear, request, false);
}

PageWalkResult GuestPageWalker::walk(const PagingMode& mode, uint32_t linear,
                                     PageAccessRequest request, bool update_bits) const {
  const uint32_t access_bits = access_error_bits(request);
  const uint32_t pde_address = (mode.cr3 & kFrameMask) + ((linear >> 22) << 2);
  const uint32_t pde = read_entry(pde_address);
  if (!(pde & pte::kPresent)) return {std::nullopt, access_bits};

  const bool large = mode.pse && (pde & pte::kPageSize);
  if (large && (pde & pte::kLargePageReserved)) {
    return {std::nullopt, access_bits | pf_error::kPresent | pf_error::kReserved};
  }

  std::optional<uint32_t> pte_address;
  uint32_t final_entry = pde;
  uint32_t combined = pde;  // R/W and U/S are ANDed across levels.
  if (!large) {
    pte_address = (pde & kFrameMask) + (((linear >> 12) & 0x3FF) << 2);
    final_entry = read_entry(*pte_address);
    if (!(final_entry & pte::kPresent)) return {std::nullopt, access_bits};
    combined &= final_entry;
  }

  const bool user_page = combined & pte::kUser;
  const bool rw_page = combined & pte::kWritable;
  // Writable for this request: user writes always obey R/W; supervisor writes
  // obey it only under CR0.WP.
  const bool writable = rw_page || (!request.user && !mode.wp);
  if ((request.user && !user_page) || (request.type == AccessType::kWrite && !writable)) {
    return {std::nullopt, access_bits | pf_error::kPresent};
  }

  const bool accessed = (pde & pte::kAccessed) && (final_entry & pte::kAccessed);
  if (update_bits) {
    set_bits(pde_address, pde, pte::kAccessed);
    const uint32_t final_address = pte_address ? *pte_address : pde_address;
    const uint32_t current = read_entry(final_address);
    uint32_t bits = pte::kAccessed;
    if (request.type == AccessType::kWrite) bits |= pte::kDirty;
    set_bits(final_address, current, bits);
    final_entry = read_entry(final_address);
  }

  PageTranslation t;
  t.page_size = large ? kLargePageSize : 4096;
  t.page_linear = linear & ~(t.page_size - 1);
  t.page_physical = final_entry & (large ? kLargeFrameMask : kFrameMask);
  t.physical = t.page_physical + (linear - t.page_linear);
  t.writable = writable;
  t.user = user_page;
  t.global = mode.pge && (final_entry & pte::kGlobal);
  t.dirty = final_entry & pte::kDirty;
  t.accessed = accessed;
  t.pde_address = pde_address;
  t.pte_address = pte_address;
  return {t, 0};
}

}  // namespace bt86
