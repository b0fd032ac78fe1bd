#include "monitor/multiboot_loader.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "monitor/flat_boot_state.h"

namespace bt86 {

using namespace multiboot;

namespace {

template <typename T>
T load_le(std::span<const uint8_t> bytes, uint64_t offset) {
  T v;
  std::memcpy(&v, bytes.data() + offset, sizeof v);
  return v;
}

// ELF32 constants and offsets (System V ABI, i386 supplement).
constexpr uint32_t kElfHeaderSize = 52;
constexpr uint32_t kProgramHeaderSize = 32;
constexpr uint8_t kElfClass32 = 1;
constexpr uint8_t kElfDataLsb = 1;
constexpr uint16_t kElfTypeExec = 2;
constexpr uint16_t kElfMachine386 = 3;
constexpr uint32_t kPtLoad = 1;

struct LoadSegment {
  uint64_t file_offset;
  uint64_t file_size;
  uint64_t paddr;
  uint64_t mem_size;
};

struct Layout {
  std::vector<LoadSegment> segments;
  uint32_t entry;
};

class Loader {
 public:
  Loader(const ImageFile& kernel) : kernel_(kernel), img_(kernel.bytes) {}

  ImageError fail(std::string_view why) const {
    return ImageError(fmt::format("{}: {}", kernel_.path, why));
  }

  Layout from_address_fields(const MultibootHeader& h) const {
    if (h.load_addr > h.header_addr || h.header_addr - h.load_addr > h.offset) {
      throw fail("Multiboot address fields place the header before the start of the file");
    }
    const uint64_t file_offset = h.offset - (h.header_addr - h.load_addr);
    uint64_t file_size = img_.size() - file_offset;
    if (h.load_end_addr != 0) {
      if (h.load_end_addr < h.load_addr) throw fail("Multiboot load_end_addr is below load_addr");
      file_size = h.load_end_addr - h.load_addr;
      if (file_size > img_.size() - file_offset) {
        throw fail(fmt::format("truncated: the Multiboot header asks for {} bytes, the file has {}",
                               file_size, img_.size() - file_offset));
      }
    }
    uint64_t mem_size = file_size;
    if (h.bss_end_addr != 0) {
      if (h.bss_end_addr < h.load_addr + file_size) {
        throw fail("Multiboot bss_end_addr is below the end of the loaded data");
      }
      mem_size = h.bss_end_addr - h.load_addr;
    }
    return {{{file_offset, file_size, h.load_addr, mem_size}}, h.entry_addr};
  }

  Layout from_elf() const {
    if (img_.size() < 4 || std::memcmp(img_.data(),
                                       "\x7F"
                                       "ELF",
                                       4) != 0) {
      throw fail("not an ELF file and no Multiboot address fields (header flag 16)");
    }
    if (img_.size() < kElfHeaderSize) throw fail("truncated ELF header");
    if (img_[4] != kElfClass32 || img_[5] != kElfDataLsb) {
      throw fail("not an ELF32 little-endian image (bt86 loads 32-bit x86 kernels)");
    }
    if (load_le<uint16_t>(img_, 16) != kElfTypeExec ||
        load_le<uint16_t>(img_, 18) != kElfMachine386) {
      throw fail("not an i386 ELF executable");
    }
    const uint32_t entry = load_le<uint32_t>(img_, 24);
    const uint32_t phoff = load_le<uint32_t>(img_, 28);
    const uint16_t phentsize = load_le<uint16_t>(img_, 42);
    const uint16_t phnum = load_le<uint16_t>(img_, 44);
    if (phnum == 0) throw fail("the ELF image has no program headers");
    if (phentsize < kProgramHeaderSize) throw fail("ELF program header entries are too small");
    if (uint64_t{phoff} + uint64_t{phnum} * phentsize > img_.size()) {
      throw fail("truncated: the ELF program headers run past the end of the file");
    }
    Layout layout{{}, entry};
    bool entry_translated = false;
    for (uint16_t i = 0; i < phnum; ++i) {
      const uint64_t ph = phoff + uint64_t{i} * phentsize;
      if (load_le<uint32_t>(img_, ph) != kPtLoad) continue;
      const LoadSegment s{load_le<uint32_t>(img_, ph + 4), load_le<uint32_t>(img_, ph + 16),
                          load_le<uint32_t>(img_, ph + 12), load_le<uint32_t>(img_, ph + 20)};
      const uint32_t vaddr = load_le<uint32_t>(img_, ph + 8);
      if (s.file_size > s.mem_size) throw fail(fmt::format("ELF segment {} has filesz > memsz", i));
      if (s.file_offset + s.file_size > img_.size()) {
        throw fail(fmt::format("truncated: ELF segment {} runs past the end of the file", i));
      }
      // Higher-half kernels link at virtual addresses: enter at the
      // physical address of the entry point, as GRUB does.
      if (!entry_translated && entry >= vaddr && entry - vaddr < s.mem_size) {
        layout.entry = static_cast<uint32_t>(entry - vaddr + s.paddr);
        entry_translated = true;
      }
      if (s.mem_size != 0) layout.segments.push_back(s);
    }
    if (layout.segments.empty()) throw fail("the ELF image has no loadable segment");
    return layout;
  }

  void check_placement(const Layout& layout, const MemoryMap& map) const {
    for (const LoadSegment& s : layout.segments) {
      if (!map.is_ram(s.paddr, s.mem_size)) {
        throw fail(
            fmt::format("segment [{:#x}, {:#x}) lies outside guest RAM (RAM is [0, 0xa0000) "
                        "and [0x100000, {:#x}))",
                        s.paddr, s.paddr + s.mem_size, map.ram_top()));
      }
      if (s.paddr < kBootDataEnd && s.paddr + s.mem_size > kGdtAddr) {
        throw fail(fmt::format("segment [{:#x}, {:#x}) overlaps bt86's boot data at [{:#x}, {:#x})",
                               s.paddr, s.paddr + s.mem_size, kGdtAddr, kBootDataEnd));
      }
    }
  }

  void load(const Layout& layout, GuestMemory& memory) const {
    for (const LoadSegment& s : layout.segments) {
      memory.write(s.paddr, std::span(img_).subspan(s.file_offset, s.file_size));
      memory.fill(s.paddr + s.file_size, 0, s.mem_size - s.file_size);
    }
  }

 private:
  const ImageFile& kernel_;
  std::span<const uint8_t> img_;
};

// Appends a NUL-terminated string to the boot-data string area.
uint32_t put_string(GuestMemory& memory, uint32_t& cursor, std::string_view s,
                    const std::string& path) {
  if (s.size() + 1 > kBootDataEnd - cursor) {
    throw ImageError(fmt::format("{}: the command line or module name is too long", path));
  }
  const uint32_t addr = cursor;
  memory.write(addr, {reinterpret_cast<const uint8_t*>(s.data()), s.size()});
  memory.write_u8(addr + static_cast<uint32_t>(s.size()), 0);
  cursor += static_cast<uint32_t>(s.size()) + 1;
  return addr;
}

}  // namespace

std::optional<MultibootHeader> find_multiboot_header(std::span<const uint8_t> image,
                                                     const std::string& path) {
  const uint64_t limit = std::min<uint64_t>(image.size(), kSearchLimit);
  for (uint64_t off = 0; off + 4 <= limit; off += 4) {
    if (load_le<uint32_t>(image, off) != kHeaderMagic) continue;
    if (off + 12 > image.size()) {
      throw ImageError(fmt::format("{}: truncated Multiboot header at offset {:#x}", path, off));
    }
    MultibootHeader h{};
    h.offset = static_cast<uint32_t>(off);
    h.flags = load_le<uint32_t>(image, off + 4);
    const uint32_t checksum = load_le<uint32_t>(image, off + 8);
    if (kHeaderMagic + h.flags + checksum != 0) {
      throw ImageError(fmt::format(
          "{}: bad Multiboot header checksum at offset {:#x} (magic + flags + checksum is {:#x}, "
          "not 0)",
          path, off, static_cast<uint32_t>(kHeaderMagic + h.flags + checksum)));
    }
    // Bits 0-15 are requirements a loader must refuse if it cannot meet
    // them. bt86 provides page-aligned modules and memory information; a
    // video mode request is a preference it may ignore (no framebuffer).
    const uint32_t known = kPageAlignModules | kWantMemoryInfo | kWantVideoMode;
    if ((h.flags & 0xFFFF) & ~known) {
      throw ImageError(
          fmt::format("{}: the Multiboot header requires features bt86 does not "
                      "provide (flags {:#x})",
                      path, h.flags));
    }
    if (h.flags & kAddressFields) {
      if (off + 32 > image.size()) {
        throw ImageError(fmt::format("{}: truncated Multiboot address fields", path));
      }
      h.header_addr = load_le<uint32_t>(image, off + 12);
      h.load_addr = load_le<uint32_t>(image, off + 16);
      h.load_end_addr = load_le<uint32_t>(image, off + 20);
      h.bss_end_addr = load_le<uint32_t>(image, off + 24);
      h.entry_addr = load_le<uint32_t>(image, off + 28);
    }
    return h;
  }
  return std::nullopt;
}

CpuState load_multiboot(GuestMemory& memory, const MemoryMap& map, const BootImages& images) {
  const ImageFile& kernel = images.kernel;
  const std::optional<MultibootHeader> header = find_multiboot_header(kernel.bytes, kernel.path);
  if (!header) {
    throw ImageError(fmt::format("{}: no Multiboot header (magic {:#x}) in the first 8 KiB",
                                 kernel.path, kHeaderMagic));
  }
  const Loader loader(kernel);
  const Layout layout =
      (header->flags & kAddressFields) ? loader.from_address_fields(*header) : loader.from_elf();
  loader.check_placement(layout, map);
  loader.load(layout, memory);

  memory.fill(kInfoAddr, 0, kBootDataEnd - kInfoAddr);
  uint32_t flags = kInfoMemory | kInfoMemoryMap | kInfoLoaderName | kInfoCmdline;
  memory.write_u32(kInfoAddr + kInfoMemLower, static_cast<uint32_t>(MemoryMap::kLowRamEnd >> 10));
  memory.write_u32(kInfoAddr + kInfoMemUpper,
                   static_cast<uint32_t>((map.ram_top() - MemoryMap::kHighRamBase) >> 10));

  const std::vector<E820Entry> e820 = map.e820();
  uint32_t mmap_cursor = kMmapAddr;
  for (const E820Entry& e : e820) {
    memory.write_u32(mmap_cursor, 20);  // Size of the entry after this field.
    memory.write(mmap_cursor + 4, {reinterpret_cast<const uint8_t*>(&e.addr), 8});
    memory.write(mmap_cursor + 12, {reinterpret_cast<const uint8_t*>(&e.size), 8});
    memory.write_u32(mmap_cursor + 20, e.type);
    mmap_cursor += 24;
  }
  memory.write_u32(kInfoAddr + kInfoMmapAddr, kMmapAddr);
  memory.write_u32(kInfoAddr + kInfoMmapLength, mmap_cursor - kMmapAddr);

  uint32_t strings = kStringsAddr;
  memory.write_u32(kInfoAddr + kInfoLoaderNameAddr,
                   put_string(memory, strings, kLoaderName, kernel.path));
  memory.write_u32(kInfoAddr + kInfoCmdlineAddr,
                   put_string(memory, strings, images.cmdline, kernel.path));

  if (images.initrd) {
    const ImageFile& module = *images.initrd;
    uint64_t kernel_end = 0;
    for (const LoadSegment& s : layout.segments)
      kernel_end = std::max(kernel_end, s.paddr + s.mem_size);
    const uint64_t size = module.bytes.size();
    const uint64_t top = map.ram_top();
    const uint64_t addr = size <= top ? (top - size) & ~uint64_t{0xFFF} : 0;
    if (size > top || addr < std::max(kernel_end, MemoryMap::kHighRamBase)) {
      throw ImageError(
          fmt::format("{}: the module ({} KiB) does not fit in guest RAM above the "
                      "kernel; give the guest more memory with --mem",
                      module.path, (size + 1023) / 1024));
    }
    memory.write(addr, module.bytes);
    memory.write_u32(kModulesAddr, static_cast<uint32_t>(addr));
    memory.write_u32(kModulesAddr + 4, static_cast<uint32_t>(addr + size));
    memory.write_u32(kModulesAddr + 8, put_string(memory, strings, module.path, kernel.path));
    memory.write_u32(kInfoAddr + kInfoModsCount, 1);
    memory.write_u32(kInfoAddr + kInfoModsAddr, kModulesAddr);
    flags |= kInfoModules;
  }
  memory.write_u32(kInfoAddr + kInfoFlags, flags);

  CpuState state = flat_boot_state(memory, kGdtAddr, layout.entry);
  state.reg(Gpr::kEax) = kBootMagic;
  state.reg(Gpr::kEbx) = kInfoAddr;
  return state;
}

}  // namespace bt86
