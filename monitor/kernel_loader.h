// Chooses the boot protocol for a kernel image and loads it.
//
// A bzImage is recognised by its "HdrS" setup-header signature; anything
// else must be a Multiboot kernel (header magic in the first 8 KiB). The
// order matters: a bzImage may also carry a Multiboot-looking word, never
// the reverse.
#pragma once

#include <string_view>

#include "monitor/boot_image.h"
#include "monitor/cpu_state.h"
#include "monitor/guest_memory.h"
#include "monitor/memory_map.h"

namespace bt86 {

enum class KernelFormat { kLinuxBzImage, kMultiboot };

std::string_view kernel_format_name(KernelFormat format);

// Throws ImageError naming the file if it is neither format.
KernelFormat detect_kernel_format(const ImageFile& kernel);

struct LoadedKernel {
  KernelFormat format;
  CpuState entry;
};

// Throws ImageError (see the loaders).
LoadedKernel load_kernel(GuestMemory& memory, const MemoryMap& map, const BootImages& images);

}  // namespace bt86
