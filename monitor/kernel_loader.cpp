#include "monitor/kernel_loader.h"

#include <fmt/format.h>

#include "monitor/linux_loader.h"
#include "monitor/multiboot_loader.h"

namespace bt86 {

std::string_view kernel_format_name(KernelFormat format) {
  switch (format) {
    case KernelFormat::kLinuxBzImage:
      return "Linux bzImage";
    case KernelFormat::kMultiboot:
      return "Multiboot";
  }
  return "unknown";
}

KernelFormat detect_kernel_format(const ImageFile& kernel) {
  if (is_bzimage(kernel.bytes)) return KernelFormat::kLinuxBzImage;
  if (find_multiboot_header(kernel.bytes, kernel.path)) return KernelFormat::kMultiboot;
  throw ImageError(fmt::format(
      "{}: not a kernel bt86 can boot (neither a Linux bzImage with a \"HdrS\" header nor a "
      "Multiboot kernel with a header in its first 8 KiB)",
      kernel.path));
}

LoadedKernel load_kernel(GuestMemory& memory, const MemoryMap& map, const BootImages& images) {
  const KernelFormat format = detect_kernel_format(images.kernel);
  switch (format) {
    case KernelFormat::kLinuxBzImage:
      return {format, load_linux(memory, map, images)};
    case KernelFormat::kMultiboot:
      return {format, load_multiboot(memory, map, images)};
  }
  throw ImageError("unreachable kernel format");
}

}  // namespace bt86
