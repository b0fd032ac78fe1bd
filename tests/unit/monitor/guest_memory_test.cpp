#include "monitor/guest_memory.h"

#include <sys/mman.h>

#include <array>

#include <gtest/gtest.h>

namespace bt86 {
namespace {

TEST(GuestMemory, ReadsBackWhatWasWritten) {
  GuestMemory ram(1 << 20);
  EXPECT_EQ(ram.size(), 1u << 20);
  ram.write_u32(0x1000, 0xDEADBEEF);
  ram.write_u16(0x2000, 0x1234);
  ram.write_u8(0xFFFFF, 0x5A);
  EXPECT_EQ(ram.read_u32(0x1000), 0xDEADBEEFu);
  EXPECT_EQ(ram.read_u16(0x2000), 0x1234u);
  EXPECT_EQ(ram.read_u8(0xFFFFF), 0x5Au);
  EXPECT_EQ(ram.host_base()[0x1000], 0xEF);
}

TEST(GuestMemory, AccessesPastTheEndThrowAndWriteNothing) {
  GuestMemory ram(1 << 20);
  const std::array<uint8_t, 8> bytes{1, 2, 3, 4, 5, 6, 7, 8};
  EXPECT_THROW(ram.write((1 << 20) - 4, bytes), GuestMemoryError);
  EXPECT_EQ(ram.read_u32((1 << 20) - 4), 0u);
  EXPECT_THROW(ram.read_u32(1 << 20), GuestMemoryError);
  EXPECT_THROW(ram.write_u8(UINT64_MAX, 1), GuestMemoryError);
  EXPECT_THROW(ram.fill(0x10, 0, UINT64_MAX), GuestMemoryError);
  EXPECT_THROW(ram.host_pointer(0xFFFFF, 2), GuestMemoryError);
  EXPECT_NO_THROW(ram.write(1 << 20, std::span<const uint8_t>()));
}

TEST(GuestMemory, ErrorMessageNamesAddressAndSize) {
  GuestMemory ram(1 << 20);
  try {
    ram.read_u32(0x100000);
    FAIL() << "no exception";
  } catch (const GuestMemoryError& e) {
    EXPECT_NE(std::string(e.what()).find("0x100000"), std::string::npos) << e.what();
  }
}

TEST(GuestMemory, RejectsSizesThatAreNotWholePages) {
  EXPECT_THROW(GuestMemory(0), GuestMemoryError);
  EXPECT_THROW(GuestMemory(4097), GuestMemoryError);
}

TEST(GuestMemory, FdMapsTheSamePages) {
  GuestMemory ram(1 << 20);
  ram.write_u32(0x3000, 0xCAFEF00D);
  void* view = mmap(nullptr, 4096, PROT_READ, MAP_SHARED, ram.fd(), 0x3000);
  ASSERT_NE(view, MAP_FAILED);
  EXPECT_EQ(*static_cast<uint32_t*>(view), 0xCAFEF00Du);
  munmap(view, 4096);
}

}  // namespace
}  // namespace bt86
