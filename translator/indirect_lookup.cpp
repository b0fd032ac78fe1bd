#include "translator/indirect_lookup.h"

namespace bt86 {

IndirectLookupTable::IndirectLookupTable(uint64_t miss_target)
    : miss_target_(miss_target), entries_(size_t{1} << kIndexBits) {
  clear();
}

void IndirectLookupTable::insert(uint32_t guest_eip, uint64_t host) {
  IndirectLookupEntry& e = entries_[guest_eip & kIndexMask];
  if (e.host == miss_target_ && !all_dirty_) {
    if (filled_.size() < kTrackedSlots) {
      filled_.push_back(guest_eip & kIndexMask);
    } else {
      all_dirty_ = true;
    }
  }
  e = {guest_eip, 0, host};
}

void IndirectLookupTable::remove(uint32_t guest_eip, uint64_t host) {
  IndirectLookupEntry& e = entries_[guest_eip & kIndexMask];
  if (e.guest_eip == guest_eip && e.host == host) e = {0, 0, miss_target_};
}

void IndirectLookupTable::clear() {
  if (all_dirty_) {
    for (auto& e : entries_) e = {0, 0, miss_target_};
  } else {
    for (uint32_t slot : filled_) entries_[slot] = {0, 0, miss_target_};
  }
  filled_.clear();
  all_dirty_ = false;
}

}  // namespace bt86
