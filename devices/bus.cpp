#include "devices/bus.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace bt86 {

void Bus::attach(uint64_t base, uint64_t length, BusDevice& device) {
  if (length == 0 || base + length < base) {
    throw std::invalid_argument(fmt::format("{} bus: bad range for {}", name_, device.name()));
  }
  auto it = std::lower_bound(ranges_.begin(), ranges_.end(), base,
                             [](const Range& r, uint64_t b) { return r.base < b; });
  const bool overlaps_next = it != ranges_.end() && it->base < base + length;
  const bool overlaps_prev =
      it != ranges_.begin() && std::prev(it)->base + std::prev(it)->length > base;
  if (overlaps_next || overlaps_prev) {
    const Range& other = overlaps_next ? *it : *std::prev(it);
    throw std::invalid_argument(fmt::format("{} bus: {} at {:#x}+{:#x} overlaps {} at {:#x}+{:#x}",
                                            name_, device.name(), base, length,
                                            other.device->name(), other.base, other.length));
  }
  ranges_.insert(it, Range{base, length, &device});
}

const Bus::Range* Bus::lookup(uint64_t addr) const {
  // upper_bound finds the first range starting after addr; the candidate is
  // the one before it. The list is short (tens of devices), and sorted
  // vectors beat node-based maps on every size that matters here.
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), addr,
                             [](uint64_t a, const Range& r) { return a < r.base; });
  if (it == ranges_.begin()) return nullptr;
  --it;
  return addr - it->base < it->length ? &*it : nullptr;
}

BusDevice* Bus::find(uint64_t addr) const {
  const Range* r = lookup(addr);
  return r ? r->device : nullptr;
}

bool Bus::read(uint64_t addr, std::span<uint8_t> data) {
  ++accesses_;
  if (const Range* r = lookup(addr)) {
    r->device->read(addr - r->base, data);
    return true;
  }
  std::memset(data.data(), 0xFF, data.size());
  note_unclaimed(addr, false);
  return false;
}

bool Bus::write(uint64_t addr, std::span<const uint8_t> data) {
  ++accesses_;
  if (const Range* r = lookup(addr)) {
    r->device->write(addr - r->base, data);
    return true;
  }
  note_unclaimed(addr, true);
  return false;
}

void Bus::note_unclaimed(uint64_t addr, bool is_write) {
  if (!log_.enabled()) return;
  if (std::find(logged_unclaimed_.begin(), logged_unclaimed_.end(), addr) !=
      logged_unclaimed_.end()) {
    return;
  }
  logged_unclaimed_.push_back(addr);
  log_.note("{} bus: unclaimed {} at {:#x}", name_, is_write ? "write" : "read", addr);
}

}  // namespace bt86
