#include "shadow/guest_linear_memory.h"

#include <cstring>

namespace bt86 {
namespace {

// The longest access the VMM emulates is a 512-byte FXSAVE image, so a
// handful of pieces always suffices.
constexpr int kMaxPieces = 8;
constexpr uint32_t kMaxAccess = 4096 * (kMaxPieces - 1);

}  // namespace

std::optional<LinearAccessFault> GuestLinearMemory::translate_all(
    const std::optional<PagingMode>& paging, uint32_t linear, uint32_t length, AccessType type,
    bool user, Piece* pieces, int& piece_count) {
  piece_count = 0;
  uint32_t done = 0;
  // Walk every page first without side effects, so a fault on a later page
  // leaves no accessed/dirty bits set on earlier ones and stores nothing.
  while (done < length) {
    const uint32_t at = linear + done;
    const uint32_t in_page = std::min<uint32_t>(length - done, 4096 - (at & 4095));
    uint32_t physical = at;
    if (paging) {
      const PageWalkResult r = mmu_.walker().probe(*paging, at, {type, user});
      if (!r.ok()) return LinearAccessFault{at, r.error_code, false};
      physical = r.translation->physical;
    }
    if (!memory_.contains(physical, in_page)) return LinearAccessFault{at, 0, true};
    pieces[piece_count++] = {physical, in_page};
    done += in_page;
  }
  if (paging) {
    done = 0;
    for (int i = 0; i < piece_count; ++i) {
      mmu_.walker().translate(*paging, linear + done, {type, user});
      done += pieces[i].length;
    }
  }
  return std::nullopt;
}

std::optional<LinearAccessFault> GuestLinearMemory::read(const std::optional<PagingMode>& paging,
                                                         uint32_t linear, std::span<uint8_t> out,
                                                         bool user) {
  if (out.size() > kMaxAccess) return LinearAccessFault{linear, 0, true};
  Piece pieces[kMaxPieces];
  int count = 0;
  if (auto fault = translate_all(paging, linear, static_cast<uint32_t>(out.size()),
                                 AccessType::kRead, user, pieces, count)) {
    return fault;
  }
  size_t offset = 0;
  for (int i = 0; i < count; ++i) {
    memory_.read(pieces[i].physical, out.subspan(offset, pieces[i].length));
    offset += pieces[i].length;
  }
  return std::nullopt;
}

LinearWriteResult GuestLinearMemory::write(const std::optional<PagingMode>& paging, uint32_t linear,
                                           std::span<const uint8_t> data, bool user) {
  if (data.size() > kMaxAccess) return {LinearAccessFault{linear, 0, true}, 0};
  Piece pieces[kMaxPieces];
  int count = 0;
  if (auto fault = translate_all(paging, linear, static_cast<uint32_t>(data.size()),
                                 AccessType::kWrite, user, pieces, count)) {
    return {fault, 0};
  }
  LinearWriteResult result;
  size_t offset = 0;
  for (int i = 0; i < count; ++i) {
    memory_.write(pieces[i].physical, data.subspan(offset, pieces[i].length));
    result.traced |= mmu_.note_guest_write(pieces[i].physical, pieces[i].length);
    offset += pieces[i].length;
  }
  return result;
}

}  // namespace bt86
