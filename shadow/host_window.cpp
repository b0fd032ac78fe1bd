#include "shadow/host_window.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

namespace bt86 {
namespace {

constexpr uint64_t kPageMask = 4095;

int prot_bits(HostProtection prot) {
  switch (prot) {
    case HostProtection::kNone:
      return PROT_NONE;
    case HostProtection::kRead:
      return PROT_READ;
    case HostProtection::kReadWrite:
      return PROT_READ | PROT_WRITE;
  }
  return PROT_NONE;
}

void check_range(uint32_t linear, uint64_t length) {
  if ((linear & kPageMask) || (length & kPageMask) || length == 0 ||
      linear + length > HostWindow::kSpan) {
    throw std::invalid_argument(fmt::format("host window: bad range {:#x}+{:#x}", linear, length));
  }
}

[[noreturn]] void fail(const char* what, uint32_t linear, uint64_t length) {
  throw std::runtime_error(fmt::format("host window: {} of {:#x}+{:#x} failed: {}", what, linear,
                                       length, std::strerror(errno)));
}

}  // namespace

HostWindow::HostWindow() {
  void* p = mmap(nullptr, kGuard + kReservation, PROT_NONE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    throw std::runtime_error(
        fmt::format("cannot reserve a 4 GiB host window: {}", std::strerror(errno)));
  }
  base_ = static_cast<uint8_t*>(p) + kGuard;
}

HostWindow::~HostWindow() {
  munmap(base_ - kGuard, kGuard + kReservation);
}

bool HostWindow::contains(const void* host_address) const {
  auto p = static_cast<const uint8_t*>(host_address);
  return p >= base_ && p < base_ + kReservation;
}

uint32_t HostWindow::linear_of(const void* host_address) const {
  return static_cast<uint32_t>(static_cast<const uint8_t*>(host_address) - base_);
}

void HostWindow::map(uint32_t linear, int fd, uint64_t offset, uint64_t length,
                     HostProtection prot) {
  check_range(linear, length);
  unmirror(linear, length);
  if (mmap(base_ + linear, length, prot_bits(prot), MAP_SHARED | MAP_FIXED, fd,
           static_cast<off_t>(offset)) == MAP_FAILED) {
    fail("mmap", linear, length);
  }
  ++mapping_count_;
}

void HostWindow::protect(uint32_t linear, uint64_t length, HostProtection prot) {
  check_range(linear, length);
  if (mprotect(base_ + linear, length, prot_bits(prot)) != 0) fail("mprotect", linear, length);
  const uint32_t first = linear >> 12;
  for (auto it = mirrored_.lower_bound(first); it != mirrored_.end() && *it - first < length >> 12;
       ++it) {
    if (mprotect(base_ + kSpan + (uint64_t{*it} << 12), 4096, prot_bits(prot)) != 0) {
      fail("mprotect", *it << 12, 4096);
    }
  }
}

void HostWindow::unmap(uint32_t linear, uint64_t length) {
  check_range(linear, length);
  if (mmap(base_ + linear, length, PROT_NONE,
           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) == MAP_FAILED) {
    fail("unmap", linear, length);
  }
  mapping_count_ = mapping_count_ > 1 ? mapping_count_ - 1 : 0;
  unmirror(linear, length);
}

void HostWindow::revoke(uint32_t linear, uint64_t length) {
  protect(linear, length, HostProtection::kNone);
  mapping_count_ = mapping_count_ > 1 ? mapping_count_ - 1 : 0;
}

void HostWindow::revive(uint32_t linear, uint64_t length, HostProtection prot) {
  protect(linear, length, prot);
  ++mapping_count_;
}

void HostWindow::unmirror(uint32_t linear, uint64_t length) {
  const uint32_t first = linear >> 12;
  auto it = mirrored_.lower_bound(first);
  while (it != mirrored_.end() && *it - first < length >> 12) {
    if (mmap(base_ + kSpan + (uint64_t{*it} << 12), 4096, PROT_NONE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) == MAP_FAILED) {
      fail("unmap", *it << 12, 4096);
    }
    mapping_count_ = mapping_count_ > 1 ? mapping_count_ - 1 : 0;
    it = mirrored_.erase(it);
  }
}

bool HostWindow::mirror(uint32_t linear_page) {
  uint8_t* page = base_ + (uint64_t{linear_page} << 12);
  // An old size of 0 duplicates a shared mapping instead of moving it.
  if (mremap(page, 0, 4096, MREMAP_MAYMOVE | MREMAP_FIXED, page + kSpan) == MAP_FAILED) {
    return false;  // EINVAL: the page is the PROT_NONE reservation, not a memfd mapping.
  }
  if (mirrored_.insert(linear_page).second) ++mapping_count_;
  return true;
}

void HostWindow::unmap_all() {
  if (mmap(base_, 2 * kSpan, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1,
           0) == MAP_FAILED) {
    throw std::runtime_error(
        fmt::format("host window: unmapping everything failed: {}", std::strerror(errno)));
  }
  mapping_count_ = 0;
  mirrored_.clear();
}

}  // namespace bt86
