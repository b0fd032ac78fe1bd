// The in-cache indirect-branch lookup table: guest EIP -> host entry.
//
// Indirect jumps, indirect calls and returns look their target up here from
// translated code (see UnitEmitter::emit_indirect_jump) and jump straight to
// the unit on a hit; only a miss leaves the cache. The table is direct
// mapped on the low bits of the EIP. Empty slots point at the indirect-miss
// stub, so a tag that happens to match an empty slot is still correct: it
// just leaves the cache like any miss. Entries are filled by the runtime on
// a miss and dropped on invalidation or flush. A clear resets only the slots
// filled since the last one while they are few: a guest that toggles
// CR4.PGE empties every table, and rewriting a megabyte each time cost more
// than the lookups it served.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace bt86 {

struct IndirectLookupEntry {
  uint32_t guest_eip;
  uint32_t unused;
  uint64_t host;
};
static_assert(sizeof(IndirectLookupEntry) == 16);

class IndirectLookupTable {
 public:
  static constexpr int kIndexBits = 16;
  static constexpr uint32_t kIndexMask = (1u << kIndexBits) - 1;

  explicit IndirectLookupTable(uint64_t miss_target);
  uint64_t address() const { return reinterpret_cast<uint64_t>(entries_.data()); }
  void insert(uint32_t guest_eip, uint64_t host);
  // The host entry for guest_eip, or 0 if the table has none.
  uint64_t find(uint32_t guest_eip) const {
    const IndirectLookupEntry& e = entries_[guest_eip & kIndexMask];
    return e.guest_eip == guest_eip && e.host != miss_target_ ? e.host : 0;
  }
  // Drops the entry for guest_eip if it points at host (O(1)).
  void remove(uint32_t guest_eip, uint64_t host);
  void clear();

 private:
  static constexpr size_t kTrackedSlots = (size_t{1} << kIndexBits) / 8;

  uint64_t miss_target_;
  std::vector<IndirectLookupEntry> entries_;
  // Slots filled since the last clear, until there are kTrackedSlots of
  // them; beyond that a clear rewrites the whole table.
  std::vector<uint32_t> filled_;
  bool all_dirty_ = true;
};

}  // namespace bt86
