// The shadow MMU's identity space (paging off) and unassigned memory.
#include <gtest/gtest.h>

#include <sys/mman.h>
#include <unistd.h>

#include "shadow/shadow_mmu.h"

namespace bt86 {
namespace {

TEST(IdentitySpace, MapsRamReadWriteAndTracesFrames) {
  GuestMemory ram(8u << 20);
  ShadowMmu mmu(ram, {});
  ShadowAddressSpace& s = mmu.activate_identity();
  ram.write_u32(0x5000, 0xABCD);
  auto r = mmu.resolve_fault(s, WindowKind::kSupervisor, 0x5000, false);
  ASSERT_EQ(r.kind, HiddenFaultResult::Kind::kMapped);
  uint8_t* w = s.window(WindowKind::kSupervisor).base();
  EXPECT_EQ(*reinterpret_cast<uint32_t*>(w + 0x5000), 0xABCDu);
  *reinterpret_cast<uint32_t*>(w + 0x5004) = 7;  // Read/write already.
  EXPECT_EQ(ram.read_u32(0x5004), 7u);
  EXPECT_TRUE(s.mappings(WindowKind::kSupervisor).contains(0x6)) << "a run is mapped at once";

  mmu.trace_frame(0x5, TraceKind::kCode);
  EXPECT_EQ(s.mappings(WindowKind::kSupervisor).at(0x5).prot, HostProtection::kRead);
  r = mmu.resolve_fault(s, WindowKind::kSupervisor, 0x5008, true);
  EXPECT_EQ(r.kind, HiddenFaultResult::Kind::kTraceWrite);
  EXPECT_EQ(r.physical, 0x5008u);
  mmu.untrace_frame(0x5, TraceKind::kCode);
  r = mmu.resolve_fault(s, WindowKind::kSupervisor, 0x5008, true);
  EXPECT_EQ(r.kind, HiddenFaultResult::Kind::kMapped);
}

TEST(IdentitySpace, OutsideRamReadsTheUnassignedPage) {
  GuestMemory ram(4u << 20);
  const int fd = memfd_create("unassigned-test", MFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, 4096), 0);
  ShadowMmu mmu(ram, {.unassigned_fd = fd});
  ShadowAddressSpace& s = mmu.activate_identity();
  auto r = mmu.resolve_fault(s, WindowKind::kSupervisor, 0xC0001234, false);
  ASSERT_EQ(r.kind, HiddenFaultResult::Kind::kMapped);
  EXPECT_EQ(s.window(WindowKind::kSupervisor).base()[0xC0001234], 0);
  EXPECT_EQ(s.mappings(WindowKind::kSupervisor).at(0xC0001).frame,
            ShadowAddressSpace::kUnassignedFrame);
  r = mmu.resolve_fault(s, WindowKind::kSupervisor, 0xC0001234, true);
  EXPECT_EQ(r.kind, HiddenFaultResult::Kind::kNotRam);

  ShadowMmu strict(ram, {});
  ShadowAddressSpace& t = strict.activate_identity();
  EXPECT_EQ(strict.resolve_fault(t, WindowKind::kSupervisor, 0xC0001234, false).kind,
            HiddenFaultResult::Kind::kNotRam);
  close(fd);
}

}  // namespace
}  // namespace bt86
