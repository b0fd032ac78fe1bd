// A host window: 4 GiB (+ guard) of reserved host address space in which
// guest linear address L lives at base() + L.
//
// Translated code reaches guest memory as gs:[addr32 ...] with the GS base
// at a window, so the 32-bit effective address wraps exactly as on the guest
// and an access can never leave the reservation: the guard past 4 GiB covers
// the few bytes a multi-byte access at 0xFFFFFFFF spills over. Unmapped
// parts are PROT_NONE, so the first touch of a page raises a host fault that
// the shadow MMU resolves (a "hidden page fault").
//
// Above the 4 GiB the window holds a mirror of it: a segment-prefixed access
// whose host segment base is base() + guest segment base (the FS-routed
// guest segment) reaches base() + guest base + offset, which can exceed
// 4 GiB where the guest wraps (Linux's user TLS lives at negative offsets
// from GS); the mirror makes that wrap come out right. Few pages are ever
// reached that way, so the mirror is filled lazily: the fault handler calls
// mirror() for a page first touched at 4 GiB + L, and from then on protect
// and unmap apply to both copies. Mapping both halves eagerly doubled the
// cost of every hidden fault and every dropped mapping.
//
// Pages are memfd (guest RAM) pages mapped MAP_SHARED, so every window and
// the VMM's own mapping see one copy. The window counts the host mappings it
// creates, which is what the shadow MMU budgets against vm.max_map_count.
//
//   HostWindow w;
//   w.map(0xC0000000, ram.fd(), /*offset=*/0, 16 << 20, HostProtection::kRead);
//   w.base()[0xC0000000] == ram.host_base()[0]
#pragma once

#include <cstdint>
#include <set>

namespace bt86 {

enum class HostProtection { kNone, kRead, kReadWrite };

class HostWindow {
 public:
  static constexpr uint64_t kSpan = 1ULL << 32;
  static constexpr uint64_t kGuard = 64 * 1024;
  // From base(): the window, its mirror and the guard. Another guard lies
  // below base(), so that nothing translated code could address by
  // mistake just below the window is VMM memory.
  static constexpr uint64_t kReservation = 2 * kSpan + kGuard;

  // Throws std::runtime_error if the reservation cannot be made.
  HostWindow();
  ~HostWindow();
  HostWindow(const HostWindow&) = delete;
  HostWindow& operator=(const HostWindow&) = delete;

  uint8_t* base() const { return base_; }
  bool contains(const void* host_address) const;
  uint32_t linear_of(const void* host_address) const;

  // linear and length must be page aligned; [linear, linear + length) must
  // lie below 4 GiB. Throws std::runtime_error on a failed system call.
  void map(uint32_t linear, int fd, uint64_t offset, uint64_t length, HostProtection prot);
  void protect(uint32_t linear, uint64_t length, HostProtection prot);
  // Back to reserved-and-inaccessible.
  void unmap(uint32_t linear, uint64_t length);
  // Inaccessible, but still backed by what was mapped there, so that
  // revive() can give the same backing back with one mprotect. An mmap over
  // a mapping cost about four times an mprotect on these hosts (2.7 and
  // 4.3 us against 0.65 us), and guests hand the same frame back to the same
  // page all the time (a dirty bit set, a copy-on-write page that turned
  // out to be the last copy). The caller remembers what backs the range.
  void revoke(uint32_t linear, uint64_t length);
  void revive(uint32_t linear, uint64_t length, HostProtection prot);
  void unmap_all();
  // Makes 4 GiB + linear_page's address show the page mapped at linear_page
  // (same frame, same protection); false if nothing is mapped there.
  bool mirror(uint32_t linear_page);

  // Host mappings created and not yet removed or revoked, mirrors included
  // (an upper bound: the kernel may merge neighbours, and a partial unmap or
  // protect may split one). A revoked range still holds host mappings; its
  // owner counts them.
  uint64_t mapping_count() const { return mapping_count_; }

 private:
  void unmirror(uint32_t linear, uint64_t length);

  uint8_t* base_ = nullptr;
  uint64_t mapping_count_ = 0;
  std::set<uint32_t> mirrored_;  // Linear page numbers mirrored above 4 GiB.
};

}  // namespace bt86
