#include "monitor/machine_setup.h"

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "monitor/boot_image.h"
#include "monitor/memory_map.h"

namespace bt86 {

std::variant<MachineSetup, ExitStatus> set_up_machine(const MachineConfig& config,
                                                      SerialOutput& serial,
                                                      ConsoleInput* console_input) {
  MachineSetup setup;
  if (!config.debug_log_path.empty()) {
    setup.debug_log.reset(std::fopen(config.debug_log_path.c_str(), "w"));
    if (!setup.debug_log) {
      fmt::print(stderr, "bt86: cannot open the debug log '{}': {}\n", config.debug_log_path,
                 std::strerror(errno));
      return ExitStatus::kUsage;
    }
  }

  BootImages images;
  try {
    images.kernel = read_image_file(config.kernel_path);
    if (config.initrd_path) images.initrd = read_image_file(*config.initrd_path);
  } catch (const ImageFileError& e) {
    fmt::print(stderr, "bt86: {}\n", e.what());
    return ExitStatus::kUsage;
  }
  images.cmdline = config.cmdline;

  MachineParts parts;
  parts.ram_size = config.ram_size;
  parts.serial = &serial;
  parts.console_input = console_input;
  parts.debug_log = setup.debug_log.get();
  try {
    setup.machine = std::make_unique<Machine>(std::move(parts));
  } catch (const MemoryMapError& e) {
    fmt::print(stderr, "bt86: {}\n", e.what());
    return ExitStatus::kUsage;
  } catch (const std::exception& e) {
    fmt::print(stderr, "bt86: cannot build the machine: {}\n", e.what());
    return ExitStatus::kHostError;
  }

  try {
    setup.kernel = load_kernel(setup.machine->memory(), setup.machine->memory_map(), images);
  } catch (const ImageError& e) {
    fmt::print(stderr, "bt86: {}\n", e.what());
    return ExitStatus::kBadImage;
  }
  setup.machine->log().note("loaded {} kernel {}, entry {:#x}",
                            kernel_format_name(setup.kernel.format), config.kernel_path,
                            setup.kernel.entry.eip);
  return setup;
}

}  // namespace bt86
