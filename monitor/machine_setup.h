// The machine a `run` or a `debug` session works on, built from its
// configuration: the debug log, the boot images, the Machine, and the kernel
// loaded into it. Both commands go through here, so a missing file or a bad
// image gets the same message and exit status whichever command met it.
#pragma once

#include <cstdio>
#include <memory>
#include <variant>

#include "monitor/exit_status.h"
#include "monitor/kernel_loader.h"
#include "monitor/machine.h"

namespace bt86 {

struct MachineSetup {
  // Declared before the machine, which writes to it, so it is closed after.
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> debug_log{nullptr, &std::fclose};
  std::unique_ptr<Machine> machine;
  LoadedKernel kernel;
};

// On failure prints the reason on stderr and returns the exit status to end with.
std::variant<MachineSetup, ExitStatus> set_up_machine(const MachineConfig& config,
                                                      SerialOutput& serial,
                                                      ConsoleInput* console_input);

}  // namespace bt86
