#include "devices/pci_config_space.h"

#include <gtest/gtest.h>

#include "tests/unit/devices/device_test_support.h"

namespace bt86 {
namespace {

class PciConfigSpaceTest : public ::testing::Test {
 protected:
  PciConfigSpaceTest() { bus.attach(PciConfigSpace::kBase, PciConfigSpace::kPortCount, pci); }

  DebugLog log;
  Bus bus{"port", log};
  test::PortIo io{bus};
  PciConfigSpace pci;
};

TEST_F(PciConfigSpaceTest, AddressRegisterReadsBackLikeLinuxType1Probe) {
  // arch/x86/pci/direct.c pci_check_type1().
  io.outb(0xCFB, 0x01);
  const uint32_t saved = io.inl(0xCF8);
  io.outl(0xCF8, 0x80000000);
  EXPECT_EQ(io.inl(0xCF8), 0x80000000u);
  io.outl(0xCF8, saved);
  EXPECT_EQ(io.inl(0xCF8), saved);
}

TEST_F(PciConfigSpaceTest, EveryDeviceReadsAllOnes) {
  for (uint32_t device = 0; device < 32; ++device) {
    io.outl(0xCF8, 0x80000000 | device << 11);
    EXPECT_EQ(io.inl(0xCFC), 0xFFFFFFFFu);
  }
  EXPECT_EQ(io.inb(0xCFE), 0xFF);
  io.outl(0xCFC, 0x12345678);  // Dropped.
  EXPECT_EQ(io.inl(0xCFC), 0xFFFFFFFFu);
}

TEST_F(PciConfigSpaceTest, NarrowAddressAccessesAreNotDecoded) {
  io.outl(0xCF8, 0x80001234);
  EXPECT_EQ(pci.address(), 0x80001234u);
  io.outb(0xCF8, 0x00);
  EXPECT_EQ(pci.address(), 0x80001234u);
  EXPECT_EQ(io.inb(0xCF8), 0xFF);  // So the mechanism #2 probe fails.
  io.outl(0xCF8, 0x80000007);
  EXPECT_EQ(pci.address(), 0x80000004u);
}

}  // namespace
}  // namespace bt86
