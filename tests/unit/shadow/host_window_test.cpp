#include "shadow/host_window.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include "monitor/guest_memory.h"
#include "tests/unit/shadow/host_protection.h"

namespace bt86 {
namespace {

// The mirror above 4 GiB: base + 4 GiB + L is L again, so an access whose
// segment base plus offset passes 4 GiB wraps as it does on the guest. It is
// filled on demand (the fault handler calls mirror()), and once there it
// follows protect and unmap.
TEST(HostWindowMirror, MirroredPagesFollowProtectAndUnmap) {
  GuestMemory ram(1u << 20);
  ram.write_u32(0x3000, 0x11223344);
  HostWindow w;
  w.map(0xFFFFF000, ram.fd(), 0x3000, 4096, HostProtection::kReadWrite);
  EXPECT_EQ(w.mapping_count(), 1u);
  EXPECT_FALSE(w.mirror(0xFFFFE)) << "nothing mapped there";
  ASSERT_TRUE(w.mirror(0xFFFFF));
  volatile uint32_t* low = reinterpret_cast<uint32_t*>(w.base() + 0xFFFFF000);
  volatile uint32_t* high = reinterpret_cast<uint32_t*>(w.base() + HostWindow::kSpan + 0xFFFFF000);
  EXPECT_EQ(*low, 0x11223344u);
  EXPECT_EQ(*high, 0x11223344u);
  *high = 5;
  EXPECT_EQ(ram.read_u32(0x3000), 5u);
  EXPECT_EQ(w.mapping_count(), 2u);
  w.protect(0xFFFFF000, 4096, HostProtection::kRead);
  EXPECT_EQ(host_protection(const_cast<uint32_t*>(high)), "r--");
  w.unmap(0xFFFFF000, 4096);
  EXPECT_EQ(w.mapping_count(), 0u);
  EXPECT_EQ(host_protection(const_cast<uint32_t*>(high)), "---");
}

// A revoked page is inaccessible but keeps its backing, so revive() gives
// the same frame back; it is no longer counted, since its owner counts it.
TEST(HostWindowRevoke, ARevokedPageComesBackWithItsBackingAndItsMirror) {
  GuestMemory ram(1u << 20);
  ram.write_u32(0x5000, 0xcafe);
  HostWindow w;
  w.map(0xFFFFF000, ram.fd(), 0x5000, 4096, HostProtection::kReadWrite);
  ASSERT_TRUE(w.mirror(0xFFFFF));
  volatile uint32_t* low = reinterpret_cast<uint32_t*>(w.base() + 0xFFFFF000);
  volatile uint32_t* high = reinterpret_cast<uint32_t*>(w.base() + HostWindow::kSpan + 0xFFFFF000);
  w.revoke(0xFFFFF000, 4096);
  EXPECT_EQ(host_protection(const_cast<uint32_t*>(low)), "---");
  EXPECT_EQ(host_protection(const_cast<uint32_t*>(high)), "---");
  EXPECT_EQ(w.mapping_count(), 1u) << "the mirror is still a live mapping";
  ram.write_u32(0x5000, 0xbeef);
  w.revive(0xFFFFF000, 4096, HostProtection::kRead);
  EXPECT_EQ(w.mapping_count(), 2u);
  EXPECT_EQ(host_protection(const_cast<uint32_t*>(low)), "r--");
  EXPECT_EQ(host_protection(const_cast<uint32_t*>(high)), "r--");
  EXPECT_EQ(*low, 0xbeefu);
  EXPECT_EQ(*high, 0xbeefu);
}

// Both ends of the reservation are guards the window owns: a mapping there
// cannot be made, so no other host memory sits where a stray access just
// below the window or just past its mirror would land.
TEST(HostWindowGuards, TheAddressesJustOutsideTheWindowAreReserved) {
  HostWindow w;
  for (uint8_t* at : {w.base() - 4096, w.base() + HostWindow::kReservation - 4096}) {
    void* p = mmap(at, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    EXPECT_EQ(p, MAP_FAILED) << static_cast<void*>(at);
    EXPECT_EQ(errno, EEXIST);
    if (p != MAP_FAILED) munmap(p, 4096);
  }
}

}  // namespace
}  // namespace bt86
