#include "monitor/linux_loader.h"

#include <cstdlib>
#include <cstring>
#include <filesystem>

#include <gtest/gtest.h>

#include "monitor/flat_boot_state.h"
#include "monitor/kernel_loader.h"

namespace bt86 {
namespace {

using namespace linux_boot;

// A synthetic bzImage: real-mode part of (setup_sects + 1) sectors with a
// protocol 2.15 setup header, then pm_size bytes of "kernel".
struct BzImageSpec {
  uint8_t setup_sects = 4;
  uint16_t version = 0x020F;
  uint8_t loadflags = kLoadedHigh;
  uint32_t pm_size = 0x3000;
  uint32_t initrd_addr_max = 0x7FFFFFFF;
  uint32_t cmdline_size = 255;
  uint32_t init_size = 0x200000;
  bool relocatable = false;
  uint64_t pref_address = 0x100000;
};

template <typename T>
void put(std::vector<uint8_t>& v, uint32_t offset, T value) {
  std::memcpy(v.data() + offset, &value, sizeof value);
}

std::vector<uint8_t> make_bzimage(const BzImageSpec& spec) {
  const uint32_t setup_bytes = (spec.setup_sects + 1) * 512;
  std::vector<uint8_t> img(setup_bytes + spec.pm_size, 0);
  img[kSetupSects] = spec.setup_sects;
  put<uint32_t>(img, kSyssize, (spec.pm_size + 15) / 16);
  put<uint16_t>(img, kBootFlag, 0xAA55);
  img[kJump] = 0xEB;
  img[kJump + 1] = 0x6A;  // Header ends at 0x26C.
  put<uint32_t>(img, kHeader, kHdrSMagic);
  put<uint16_t>(img, kVersion, spec.version);
  img[kLoadflags] = spec.loadflags;
  put<uint32_t>(img, kCode32Start, 0x100000);
  put<uint32_t>(img, kInitrdAddrMax, spec.initrd_addr_max);
  put<uint32_t>(img, kKernelAlignment, 0x200000);
  img[kRelocatableKernel] = spec.relocatable;
  put<uint32_t>(img, kCmdlineSize, spec.cmdline_size);
  put<uint64_t>(img, kPrefAddress, spec.pref_address);
  put<uint32_t>(img, kInitSize, spec.init_size);
  for (uint32_t i = 0; i < spec.pm_size; ++i) img[setup_bytes + i] = static_cast<uint8_t>(i * 7);
  return img;
}

class LinuxLoaderTest : public testing::Test {
 protected:
  static constexpr uint64_t kRam = 64ull << 20;
  MemoryMap map{kRam};
  GuestMemory memory{kRam};

  CpuState load(std::vector<uint8_t> kernel, std::string cmdline = "console=ttyS0",
                std::optional<std::vector<uint8_t>> initrd = std::nullopt) {
    BootImages images{{"test-bzImage", std::move(kernel)}, std::nullopt, std::move(cmdline)};
    if (initrd) images.initrd = ImageFile{"test-initrd", std::move(*initrd)};
    return load_linux(memory, map, images);
  }

  std::string load_error(std::vector<uint8_t> kernel,
                         std::optional<std::vector<uint8_t>> initrd = std::nullopt) {
    try {
      load(std::move(kernel), "", std::move(initrd));
    } catch (const ImageError& e) {
      return e.what();
    }
    return "no error";
  }
};

TEST_F(LinuxLoaderTest, LoadsProtectedModePartAtOneMegabyte) {
  const BzImageSpec spec;
  const std::vector<uint8_t> img = make_bzimage(spec);
  load(img);
  EXPECT_EQ(std::memcmp(memory.host_pointer(kKernelAddr, spec.pm_size), img.data() + 5 * 512,
                        spec.pm_size),
            0);
}

TEST_F(LinuxLoaderTest, FillsBootParams) {
  load(make_bzimage({}), "console=ttyS0 quiet");
  const auto bp = [](uint32_t offset) { return kBootParamsAddr + offset; };
  EXPECT_EQ(memory.read_u32(bp(kHeader)), kHdrSMagic);
  EXPECT_EQ(memory.read_u16(bp(kVersion)), 0x020F);
  EXPECT_EQ(memory.read_u8(bp(kTypeOfLoader)), 0xFF);
  EXPECT_EQ(memory.read_u8(bp(kLoadflags)), kLoadedHigh | kCanUseHeap);
  EXPECT_EQ(memory.read_u16(bp(kHeapEndPtr)), 0xDE00);
  EXPECT_EQ(memory.read_u32(bp(kRamdiskImage)), 0u);
  const uint32_t cmdline = memory.read_u32(bp(kCmdLinePtr));
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(memory.host_pointer(cmdline, 20))),
            "console=ttyS0 quiet");
  EXPECT_EQ(memory.read_u32(bp(kAltMemK)), (kRam >> 10) - 1024);
}

TEST_F(LinuxLoaderTest, WritesTheE820Table) {
  load(make_bzimage({}));
  ASSERT_EQ(memory.read_u8(kBootParamsAddr + kE820Entries), 3);
  const auto entry = [&](int i) {
    const uint32_t a = kBootParamsAddr + kE820Table + 20 * i;
    uint64_t addr, size;
    memory.read(a, {reinterpret_cast<uint8_t*>(&addr), 8});
    memory.read(a + 8, {reinterpret_cast<uint8_t*>(&size), 8});
    return E820Entry{addr, size, memory.read_u32(a + 16)};
  };
  EXPECT_EQ(entry(0), (E820Entry{0, 0xA0000, e820::kRam}));
  EXPECT_EQ(entry(1), (E820Entry{0xA0000, 0x60000, e820::kReserved}));
  EXPECT_EQ(entry(2), (E820Entry{0x100000, kRam - 0x100000, e820::kRam}));
}

TEST_F(LinuxLoaderTest, PlacesInitrdPageAlignedAtTheTopOfRam) {
  const std::vector<uint8_t> initrd(10000, 0xAB);
  load(make_bzimage({}), "", initrd);
  const uint32_t addr = memory.read_u32(kBootParamsAddr + kRamdiskImage);
  EXPECT_EQ(memory.read_u32(kBootParamsAddr + kRamdiskSize), 10000u);
  EXPECT_EQ(addr % 4096, 0u);
  EXPECT_LE(addr + 10000u, kRam);
  EXPECT_GT(addr + 10000u + 4096, kRam);
  EXPECT_EQ(memory.read_u8(addr), 0xAB);
  EXPECT_EQ(memory.read_u8(addr + 9999), 0xAB);
}

TEST_F(LinuxLoaderTest, InitrdRespectsInitrdAddrMax) {
  BzImageSpec spec;
  spec.initrd_addr_max = 0x01FFFFFF;  // 32 MiB - 1.
  load(make_bzimage(spec), "", std::vector<uint8_t>(5000, 1));
  const uint32_t addr = memory.read_u32(kBootParamsAddr + kRamdiskImage);
  EXPECT_LE(addr + 5000u, 0x02000000u);
  EXPECT_EQ(addr, (0x02000000u - 5000u) & ~0xFFFu);
}

TEST_F(LinuxLoaderTest, EntryStateFollowsThe32BitBootProtocol) {
  const CpuState s = load(make_bzimage({}));
  EXPECT_EQ(s.eip, 0x100000u);
  EXPECT_EQ(s.reg(Gpr::kEsi), kBootParamsAddr);
  EXPECT_EQ(s.reg(Gpr::kEbp), 0u);
  EXPECT_EQ(s.reg(Gpr::kEdi), 0u);
  EXPECT_EQ(s.reg(Gpr::kEbx), 0u);
  EXPECT_EQ(s.eflags & eflags::kIf, 0u);
  EXPECT_EQ(s.cr0 & (cr0::kPe | cr0::kPg), cr0::kPe);
  EXPECT_EQ(s.segment(SegReg::kCs).selector, 0x10);
  EXPECT_EQ(s.segment(SegReg::kCs).type & 0x8, 0x8) << "code segment";
  for (SegReg r : {SegReg::kDs, SegReg::kEs, SegReg::kSs}) {
    EXPECT_EQ(s.segment(r), flat_segment(0x18, 0x3, 0));
  }
  // The GDT in memory holds the same flat descriptors.
  ASSERT_EQ(s.gdtr.base, kGdtAddr);
  EXPECT_GE(s.gdtr.limit, 0x1F);
  uint64_t code, data;
  memory.read(kGdtAddr + 0x10, {reinterpret_cast<uint8_t*>(&code), 8});
  memory.read(kGdtAddr + 0x18, {reinterpret_cast<uint8_t*>(&data), 8});
  EXPECT_EQ(code, 0x00CF9B000000FFFFull);
  EXPECT_EQ(data, 0x00CF93000000FFFFull);
}

TEST_F(LinuxLoaderTest, RejectsImageWithoutHdrS) {
  std::vector<uint8_t> img = make_bzimage({});
  put<uint32_t>(img, kHeader, 0);
  EXPECT_NE(load_error(img).find("not a bzImage"), std::string::npos);
  EXPECT_NE(load_error(img).find("test-bzImage"), std::string::npos);
}

TEST_F(LinuxLoaderTest, RejectsOldProtocol) {
  BzImageSpec spec;
  spec.version = 0x0205;
  EXPECT_NE(load_error(make_bzimage(spec)).find("2.05 is too old"), std::string::npos);
}

TEST_F(LinuxLoaderTest, RejectsZImage) {
  BzImageSpec spec;
  spec.loadflags = 0;
  EXPECT_NE(load_error(make_bzimage(spec)).find("LOADED_HIGH"), std::string::npos);
}

TEST_F(LinuxLoaderTest, RejectsTruncatedImage) {
  std::vector<uint8_t> img = make_bzimage({});
  img.resize(img.size() - 0x1000);
  EXPECT_NE(load_error(img).find("truncated"), std::string::npos);
  img.resize(0x210);
  EXPECT_NE(load_error(img).find("truncated"), std::string::npos);
}

TEST_F(LinuxLoaderTest, RejectsSetupSectsBeyondTheFile) {
  std::vector<uint8_t> img = make_bzimage({});
  img[kSetupSects] = 200;
  EXPECT_NE(load_error(img).find("setup_sects"), std::string::npos);
}

TEST_F(LinuxLoaderTest, RejectsInitrdLargerThanRam) {
  EXPECT_NE(load_error(make_bzimage({}), std::vector<uint8_t>(kRam, 0)).find("does not fit"),
            std::string::npos);
}

TEST_F(LinuxLoaderTest, RejectsKernelThatDoesNotFit) {
  BzImageSpec spec;
  spec.relocatable = true;
  spec.pref_address = 0x1000000;
  spec.init_size = 60 << 20;
  EXPECT_NE(load_error(make_bzimage(spec)).find("needs RAM"), std::string::npos);
}

TEST_F(LinuxLoaderTest, RejectsCommandLineLongerThanCmdlineSize) {
  EXPECT_THROW(load(make_bzimage({}), std::string(256, 'a')), ImageError);
  EXPECT_NO_THROW(load(make_bzimage({}), std::string(255, 'a')));
}

TEST_F(LinuxLoaderTest, LoaderSelectionPicksLinuxForHdrS) {
  const BootImages images{{"k", make_bzimage({})}, std::nullopt, ""};
  EXPECT_EQ(load_kernel(memory, map, images).format, KernelFormat::kLinuxBzImage);
  const BootImages garbage{{"garbage", std::vector<uint8_t>(9000, 0x90)}, std::nullopt, ""};
  EXPECT_THROW(load_kernel(memory, map, garbage), ImageError);
}

// The Debian 686 kernel and initramfs fetched by scripts/fetch-fixtures.sh
// into ${BT86_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bt86}, if present.
std::filesystem::path fixture_cache() {
  if (const char* cache = std::getenv("BT86_CACHE")) return cache;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME")) return std::filesystem::path(xdg) / "bt86";
  const char* home = std::getenv("HOME");
  return std::filesystem::path(home ? home : "/root") / ".cache/bt86";
}

TEST(LinuxLoaderRealKernel, LoadsTheDebianKernelAndInitramfs) {
  const std::filesystem::path kernel = fixture_cache() / "vmlinuz-686";
  const std::filesystem::path initramfs = fixture_cache() / "initramfs.cpio.gz";
  if (!std::filesystem::exists(kernel) || !std::filesystem::exists(initramfs)) {
    GTEST_SKIP() << kernel << " or " << initramfs << " is missing (run scripts/fetch-fixtures.sh)";
  }
  const MemoryMap map(256ull << 20);
  GuestMemory memory(256ull << 20);
  BootImages images{read_image_file(kernel.string()), read_image_file(initramfs.string()),
                    "console=ttyS0"};
  const LoadedKernel k = load_kernel(memory, map, images);
  EXPECT_EQ(k.format, KernelFormat::kLinuxBzImage);
  EXPECT_EQ(k.entry.eip, 0x100000u);
  EXPECT_GE(memory.read_u16(kBootParamsAddr + kVersion), 0x020Au);
  const uint32_t initrd = memory.read_u32(kBootParamsAddr + kRamdiskImage);
  EXPECT_EQ(memory.read_u32(kBootParamsAddr + kRamdiskSize), images.initrd->bytes.size());
  EXPECT_EQ(memory.read_u8(initrd), images.initrd->bytes[0]);
}

}  // namespace
}  // namespace bt86
