#include "monitor/linux_loader.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "monitor/flat_boot_state.h"

namespace bt86 {

using namespace linux_boot;

namespace {

template <typename T>
T load_le(std::span<const uint8_t> bytes, uint32_t offset) {
  T v;
  std::memcpy(&v, bytes.data() + offset, sizeof v);
  return v;
}

constexpr uint64_t align_up(uint64_t v, uint64_t a) {
  return (v + a - 1) / a * a;
}

struct SetupHeader {
  uint32_t setup_bytes;  // Real-mode part: (setup_sects + 1) * 512.
  uint32_t header_end;   // Offset just past the setup header.
  uint16_t version;
  uint8_t loadflags;
  uint32_t syssize_bytes;  // syssize * 16.
  uint32_t code32_start;
  uint32_t initrd_addr_max;
  uint32_t kernel_alignment;
  bool relocatable;
  uint32_t cmdline_size;
  uint64_t pref_address;
  uint32_t init_size;
};

SetupHeader parse_setup_header(const ImageFile& kernel) {
  const std::span<const uint8_t> img = kernel.bytes;
  const auto fail = [&](std::string_view why) {
    return ImageError(fmt::format("{}: {}", kernel.path, why));
  };
  if (img.size() < kHeader + 4 || load_le<uint32_t>(img, kHeader) != kHdrSMagic) {
    throw fail("not a bzImage (no \"HdrS\" setup header signature at offset 0x202)");
  }
  SetupHeader h{};
  h.version = load_le<uint16_t>(img, kVersion);
  if (h.version < kMinProtocol) {
    throw fail(fmt::format("Linux boot protocol {}.{:02} is too old (bt86 needs 2.06 or later)",
                           h.version >> 8, h.version & 0xFF));
  }
  // The header runs to 0x202 plus the signed jump offset at 0x201.
  h.header_end = kHeader + static_cast<int8_t>(img[kJump + 1]);
  if (h.header_end <= kCmdlineSize + 4 || h.header_end > kBootParamsSize) {
    throw fail(fmt::format("setup header length {:#x} is implausible", h.header_end - kSetupSects));
  }
  if (img.size() < h.header_end) throw fail("truncated inside the setup header");
  uint32_t setup_sects = img[kSetupSects];
  if (setup_sects == 0) setup_sects = 4;
  h.setup_bytes = (setup_sects + 1) * 512;
  if (h.setup_bytes >= img.size()) {
    throw fail(
        fmt::format("setup_sects says the real-mode part is {} bytes but the file has only {}",
                    h.setup_bytes, img.size()));
  }
  h.loadflags = img[kLoadflags];
  if (!(h.loadflags & kLoadedHigh)) {
    throw fail("not a bzImage (loadflags.LOADED_HIGH is clear: a zImage loads at 0x10000)");
  }
  h.syssize_bytes = load_le<uint32_t>(img, kSyssize) * 16;
  // syssize is rounded up to 16 bytes by the kernel build.
  if (uint64_t{h.syssize_bytes} > img.size() - h.setup_bytes + 15) {
    throw fail(
        fmt::format("truncated: the header announces {} bytes of protected-mode kernel, the "
                    "file has {}",
                    h.syssize_bytes, img.size() - h.setup_bytes));
  }
  h.code32_start = load_le<uint32_t>(img, kCode32Start);
  h.initrd_addr_max = load_le<uint32_t>(img, kInitrdAddrMax);
  h.kernel_alignment = load_le<uint32_t>(img, kKernelAlignment);
  h.relocatable = img[kRelocatableKernel] != 0;
  h.cmdline_size = load_le<uint32_t>(img, kCmdlineSize);
  const bool has_init_size = h.version >= 0x020A && h.header_end >= kInitSize + 4;
  h.pref_address = has_init_size ? load_le<uint64_t>(img, kPrefAddress) : 0;
  h.init_size = has_init_size ? load_le<uint32_t>(img, kInitSize) : 0;
  return h;
}

// End (exclusive) of the memory the kernel uses while booting: its loaded
// image, and, once its decompressor runs, init_size bytes from where it
// decompresses (its preferred address when relocatable and loaded below it,
// else the load address).
uint64_t kernel_footprint_end(const SetupHeader& h, uint64_t pm_size) {
  uint64_t end = kKernelAddr + pm_size;
  uint64_t run_addr = kKernelAddr;
  if (h.relocatable && h.pref_address > run_addr) run_addr = h.pref_address;
  if (h.relocatable && h.kernel_alignment > 1) run_addr = align_up(run_addr, h.kernel_alignment);
  end = std::max(end, kKernelAddr + uint64_t{h.init_size});
  if (h.init_size) end = std::max(end, run_addr + h.init_size);
  return end;
}

}  // namespace

bool is_bzimage(std::span<const uint8_t> image) {
  return image.size() >= kHeader + 4 && load_le<uint32_t>(image, kHeader) == kHdrSMagic;
}

CpuState load_linux(GuestMemory& memory, const MemoryMap& map, const BootImages& images) {
  const ImageFile& kernel = images.kernel;
  const SetupHeader h = parse_setup_header(kernel);
  const std::span<const uint8_t> img = kernel.bytes;
  const uint64_t pm_size = img.size() - h.setup_bytes;
  const uint64_t ram_top = map.ram_top();

  const uint64_t footprint_end = kernel_footprint_end(h, pm_size);
  if (footprint_end > ram_top) {
    throw ImageError(
        fmt::format("{}: the kernel needs RAM up to {} MiB to boot, the guest has {} MiB",
                    kernel.path, align_up(footprint_end, 1 << 20) >> 20, ram_top >> 20));
  }
  if (images.cmdline.size() > h.cmdline_size || images.cmdline.size() >= kCmdlineAreaSize) {
    throw ImageError(fmt::format("{}: the command line is {} bytes, this kernel accepts at most {}",
                                 kernel.path, images.cmdline.size(), h.cmdline_size));
  }

  memory.write(kKernelAddr, img.subspan(h.setup_bytes));

  // The zero page: zeroed, then the setup header copied from the image and
  // the loader's fields filled in.
  memory.fill(kBootParamsAddr, 0, kBootParamsSize);
  memory.write(kBootParamsAddr + kSetupSects, img.subspan(kSetupSects, h.header_end - kSetupSects));
  const auto bp = [](uint32_t offset) { return kBootParamsAddr + offset; };
  memory.write_u8(bp(kTypeOfLoader), kLoaderTypeUndefined);
  memory.write_u8(bp(kLoadflags), h.loadflags | kCanUseHeap);
  memory.write_u16(bp(kHeapEndPtr), kHeapEnd);

  memory.fill(kCmdlineAddr, 0, kCmdlineAreaSize);
  memory.write(kCmdlineAddr,
               {reinterpret_cast<const uint8_t*>(images.cmdline.data()), images.cmdline.size()});
  memory.write_u32(bp(kCmdLinePtr), kCmdlineAddr);

  if (images.initrd) {
    const ImageFile& initrd = *images.initrd;
    const uint64_t limit = std::min<uint64_t>(uint64_t{h.initrd_addr_max} + 1, ram_top);
    const uint64_t size = initrd.bytes.size();
    if (size == 0) throw ImageError(fmt::format("{}: the initrd is empty", initrd.path));
    const uint64_t addr = size <= limit ? (limit - size) & ~uint64_t{0xFFF} : 0;
    if (size > limit || addr < footprint_end) {
      throw ImageError(fmt::format(
          "{}: the initrd ({} KiB) does not fit in guest RAM between the kernel (up to {:#x}) and "
          "{:#x}; give the guest more memory with --mem",
          initrd.path, (size + 1023) / 1024, footprint_end, limit));
    }
    memory.write(addr, initrd.bytes);
    memory.write_u32(bp(kRamdiskImage), static_cast<uint32_t>(addr));
    memory.write_u32(bp(kRamdiskSize), static_cast<uint32_t>(size));
  }

  const std::vector<E820Entry> e820 = map.e820();
  memory.write_u8(bp(kE820Entries), static_cast<uint8_t>(e820.size()));
  for (size_t i = 0; i < e820.size(); ++i) {
    const uint32_t entry = bp(kE820Table) + static_cast<uint32_t>(i) * 20;
    memory.write(entry, {reinterpret_cast<const uint8_t*>(&e820[i].addr), 8});
    memory.write(entry + 8, {reinterpret_cast<const uint8_t*>(&e820[i].size), 8});
    memory.write_u32(entry + 16, e820[i].type);
  }
  memory.write_u32(bp(kAltMemK), static_cast<uint32_t>((ram_top - MemoryMap::kHighRamBase) >> 10));

  CpuState state = flat_boot_state(memory, kGdtAddr, h.code32_start);
  state.reg(Gpr::kEsi) = kBootParamsAddr;
  return state;
}

}  // namespace bt86
