#include "monitor/multiboot_loader.h"

#include <cstring>

#include <gtest/gtest.h>

#include "monitor/kernel_loader.h"

namespace bt86 {
namespace {

using namespace multiboot;

template <typename T>
void put(std::vector<uint8_t>& v, uint32_t offset, T value) {
  std::memcpy(v.data() + offset, &value, sizeof value);
}

constexpr uint32_t kHeaderOffset = 0x100;

// An ELF32 i386 executable with one PT_LOAD segment covering the whole file
// (paddr, memsz = file size + bss) and a Multiboot header at 0x100.
struct ElfSpec {
  uint32_t paddr = 0x100000;
  uint32_t vaddr = 0x100000;
  uint32_t entry = 0x100200;
  uint32_t bss = 0x1000;
  uint32_t flags = kPageAlignModules | kWantMemoryInfo;
  uint32_t size = 0x400;
};

std::vector<uint8_t> make_elf(const ElfSpec& spec) {
  std::vector<uint8_t> img(spec.size, 0);
  std::memcpy(img.data(),
              "\x7F"
              "ELF",
              4);
  img[4] = 1;  // ELFCLASS32
  img[5] = 1;  // ELFDATA2LSB
  img[6] = 1;
  put<uint16_t>(img, 16, 2);  // ET_EXEC
  put<uint16_t>(img, 18, 3);  // EM_386
  put<uint32_t>(img, 20, 1);
  put<uint32_t>(img, 24, spec.entry);
  put<uint32_t>(img, 28, 52);  // e_phoff
  put<uint16_t>(img, 40, 52);
  put<uint16_t>(img, 42, 32);
  put<uint16_t>(img, 44, 1);
  put<uint32_t>(img, 52, 1);  // PT_LOAD
  put<uint32_t>(img, 56, 0);  // p_offset
  put<uint32_t>(img, 60, spec.vaddr);
  put<uint32_t>(img, 64, spec.paddr);
  put<uint32_t>(img, 68, spec.size);
  put<uint32_t>(img, 72, spec.size + spec.bss);
  put<uint32_t>(img, kHeaderOffset, kHeaderMagic);
  put<uint32_t>(img, kHeaderOffset + 4, spec.flags);
  put<uint32_t>(img, kHeaderOffset + 8, -(kHeaderMagic + spec.flags));
  img[0x200] = 0xF4;  // hlt at the entry point.
  return img;
}

class MultibootLoaderTest : public testing::Test {
 protected:
  static constexpr uint64_t kRam = 32ull << 20;
  MemoryMap map{kRam};
  GuestMemory memory{kRam};

  CpuState load(std::vector<uint8_t> kernel, std::string cmdline = "hello",
                std::optional<std::vector<uint8_t>> module = std::nullopt) {
    BootImages images{{"test-kernel.elf", std::move(kernel)}, std::nullopt, std::move(cmdline)};
    if (module) images.initrd = ImageFile{"module.bin", std::move(*module)};
    return load_multiboot(memory, map, images);
  }

  std::string load_error(std::vector<uint8_t> kernel) {
    try {
      load(std::move(kernel));
    } catch (const ImageError& e) {
      return e.what();
    }
    return "no error";
  }

  std::string string_at(uint32_t addr) {
    return reinterpret_cast<const char*>(memory.host_pointer(addr, 1));
  }
};

TEST_F(MultibootLoaderTest, LoadsSegmentAndZeroesBss) {
  memory.fill(0x100400, 0xCC, 0x1100);
  const std::vector<uint8_t> img = make_elf({});
  load(img);
  EXPECT_EQ(std::memcmp(memory.host_pointer(0x100000, img.size()), img.data(), img.size()), 0);
  EXPECT_EQ(memory.read_u8(0x100400), 0);
  EXPECT_EQ(memory.read_u8(0x1013FF), 0);
  EXPECT_EQ(memory.read_u8(0x101400), 0xCC);
}

TEST_F(MultibootLoaderTest, EntryStateFollowsTheSpecification) {
  const CpuState s = load(make_elf({}));
  EXPECT_EQ(s.eip, 0x100200u);
  EXPECT_EQ(s.reg(Gpr::kEax), kBootMagic);
  EXPECT_EQ(s.reg(Gpr::kEbx), kInfoAddr);
  EXPECT_EQ(s.eflags & (eflags::kIf | eflags::kVm), 0u);
  EXPECT_EQ(s.cr0 & (cr0::kPe | cr0::kPg), cr0::kPe);
  EXPECT_EQ(s.segment(SegReg::kCs).limit, 0xFFFFFFFFu);
  EXPECT_EQ(s.segment(SegReg::kCs).base, 0u);
  EXPECT_TRUE(s.segment(SegReg::kCs).db);
  for (SegReg r : {SegReg::kDs, SegReg::kEs, SegReg::kFs, SegReg::kGs, SegReg::kSs}) {
    EXPECT_EQ(s.segment(r).limit, 0xFFFFFFFFu);
    EXPECT_EQ(s.segment(r).type & 0xA, 0x2) << "writable data";
  }
}

TEST_F(MultibootLoaderTest, FillsMultibootInfo) {
  load(make_elf({}), "root=none");
  const uint32_t flags = memory.read_u32(kInfoAddr + kInfoFlags);
  EXPECT_EQ(flags & (kInfoMemory | kInfoCmdline | kInfoMemoryMap | kInfoLoaderName),
            kInfoMemory | kInfoCmdline | kInfoMemoryMap | kInfoLoaderName);
  EXPECT_EQ(flags & kInfoModules, 0u);
  EXPECT_EQ(memory.read_u32(kInfoAddr + kInfoMemLower), 640u);
  EXPECT_EQ(memory.read_u32(kInfoAddr + kInfoMemUpper), (kRam >> 10) - 1024);
  EXPECT_EQ(string_at(memory.read_u32(kInfoAddr + kInfoCmdlineAddr)), "root=none");
  EXPECT_EQ(string_at(memory.read_u32(kInfoAddr + kInfoLoaderNameAddr)), "bt86");
}

TEST_F(MultibootLoaderTest, MemoryMapIsTheE820Table) {
  load(make_elf({}));
  const uint32_t addr = memory.read_u32(kInfoAddr + kInfoMmapAddr);
  const uint32_t length = memory.read_u32(kInfoAddr + kInfoMmapLength);
  std::vector<E820Entry> entries;
  for (uint32_t p = addr; p < addr + length; p += memory.read_u32(p) + 4) {
    E820Entry e{};
    memory.read(p + 4, {reinterpret_cast<uint8_t*>(&e.addr), 8});
    memory.read(p + 12, {reinterpret_cast<uint8_t*>(&e.size), 8});
    e.type = memory.read_u32(p + 20);
    entries.push_back(e);
  }
  EXPECT_EQ(entries, map.e820());
}

TEST_F(MultibootLoaderTest, InitrdBecomesModuleZero) {
  load(make_elf({}), "", std::vector<uint8_t>(3000, 0x5A));
  EXPECT_NE(memory.read_u32(kInfoAddr + kInfoFlags) & kInfoModules, 0u);
  EXPECT_EQ(memory.read_u32(kInfoAddr + kInfoModsCount), 1u);
  const uint32_t mods = memory.read_u32(kInfoAddr + kInfoModsAddr);
  const uint32_t start = memory.read_u32(mods);
  EXPECT_EQ(start % 4096, 0u);
  EXPECT_EQ(memory.read_u32(mods + 4), start + 3000);
  EXPECT_EQ(memory.read_u8(start), 0x5A);
  EXPECT_EQ(string_at(memory.read_u32(mods + 8)), "module.bin");
}

TEST_F(MultibootLoaderTest, HigherHalfEntryIsTranslatedToPhysical) {
  ElfSpec spec;
  spec.vaddr = 0xC0100000;
  spec.entry = 0xC0100200;
  EXPECT_EQ(load(make_elf(spec)).eip, 0x100200u);
}

TEST_F(MultibootLoaderTest, AddressFieldsLoadAFlatBinary) {
  // A flat binary: header at offset 0x10 with the a.out kludge fields.
  std::vector<uint8_t> img(0x300, 0x90);
  const uint32_t flags = kAddressFields;
  put<uint32_t>(img, 0x10, kHeaderMagic);
  put<uint32_t>(img, 0x14, flags);
  put<uint32_t>(img, 0x18, -(kHeaderMagic + flags));
  put<uint32_t>(img, 0x1C, 0x200010);  // header_addr
  put<uint32_t>(img, 0x20, 0x200000);  // load_addr
  put<uint32_t>(img, 0x24, 0x200300);  // load_end_addr
  put<uint32_t>(img, 0x28, 0x202000);  // bss_end_addr
  put<uint32_t>(img, 0x2C, 0x200040);  // entry_addr
  memory.fill(0x200300, 0xCC, 0x10);
  const CpuState s = load(img);
  EXPECT_EQ(s.eip, 0x200040u);
  EXPECT_EQ(memory.read_u8(0x2002FF), 0x90);
  EXPECT_EQ(memory.read_u8(0x200300), 0);
}

TEST_F(MultibootLoaderTest, RejectsMissingMagic) {
  std::vector<uint8_t> img = make_elf({});
  put<uint32_t>(img, kHeaderOffset, 0x1BADB003);
  EXPECT_NE(load_error(img).find("no Multiboot header"), std::string::npos);
}

TEST_F(MultibootLoaderTest, RejectsBadChecksum) {
  std::vector<uint8_t> img = make_elf({});
  put<uint32_t>(img, kHeaderOffset + 8, 0);
  const std::string error = load_error(img);
  EXPECT_NE(error.find("checksum"), std::string::npos) << error;
  EXPECT_NE(error.find("test-kernel.elf"), std::string::npos) << error;
}

TEST_F(MultibootLoaderTest, RejectsSegmentOutsideRam) {
  ElfSpec spec;
  spec.paddr = kRam - 0x200;
  EXPECT_NE(load_error(make_elf(spec)).find("outside guest RAM"), std::string::npos);
  spec.paddr = 0xB8000;
  EXPECT_NE(load_error(make_elf(spec)).find("outside guest RAM"), std::string::npos);
  spec.paddr = 0x7000;
  EXPECT_NE(load_error(make_elf(spec)).find("boot data"), std::string::npos);
}

TEST_F(MultibootLoaderTest, RejectsTruncatedImage) {
  std::vector<uint8_t> img = make_elf({});
  put<uint32_t>(img, 68, 0x10000);  // p_filesz beyond the file
  put<uint32_t>(img, 72, 0x10000);
  EXPECT_NE(load_error(img).find("truncated"), std::string::npos);
  std::vector<uint8_t> tiny = make_elf({});
  put<uint32_t>(tiny, 28, 0x3F0);  // program headers past the end
  EXPECT_NE(load_error(tiny).find("truncated"), std::string::npos);
}

TEST_F(MultibootLoaderTest, RejectsNonElf32) {
  std::vector<uint8_t> img = make_elf({});
  img[4] = 2;  // ELFCLASS64
  EXPECT_NE(load_error(img).find("ELF32"), std::string::npos);
  img = make_elf({});
  img[0] = 'X';
  EXPECT_NE(load_error(img).find("not an ELF"), std::string::npos);
}

TEST_F(MultibootLoaderTest, RejectsUnsupportedRequiredFlags) {
  ElfSpec spec;
  spec.flags = 1u << 5;
  EXPECT_NE(load_error(make_elf(spec)).find("requires features"), std::string::npos);
}

TEST_F(MultibootLoaderTest, LoaderSelectionPicksMultiboot) {
  const BootImages images{{"k", make_elf({})}, std::nullopt, ""};
  EXPECT_EQ(load_kernel(memory, map, images).format, KernelFormat::kMultiboot);
}

}  // namespace
}  // namespace bt86
