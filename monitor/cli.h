// The bt86 command line.
//
//   bt86 run --kernel FILE [--initrd FILE] [--append STR] [--mem SIZE]
//            [--backend bt|kvm] [--timeout SECONDS] [--debug-log FILE]
//            [--allow-software-kvm]
//   bt86 debug [the machine options of run] [--script FILE] [--symbols FILE]
//              [--gdb PORT]
//   bt86 --version | --help
//
// Parsing is separate from running and never exits the process, so tests
// drive it directly: parse_command_line() returns either a configuration to
// run or the text and exit status to finish with. Exit codes are those of
// monitor/exit_status.h and are listed in --help.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "monitor/backend.h"
#include "monitor/debugger/debug_session.h"
#include "monitor/machine.h"

namespace bt86 {

struct ParsedCommandLine {
  // Set when the run command should go ahead.
  std::optional<MachineConfig> run;
  // Set when the debug command should go ahead.
  std::optional<DebugOptions> debug;
  // Otherwise: what to print and the process exit status.
  int exit_status = 0;
  std::string out;  // For stdout (help, version).
  std::string err;  // For stderr (errors).
};

// args excludes the program name.
ParsedCommandLine parse_command_line(const std::vector<std::string>& args);

// The process exit status for how a run ended, and the one-line message to
// print on stderr (empty if none). stop is the machine's stop request, which
// explains a kStopRequested exit.
int run_exit_status(const VcpuExit& exit, const std::optional<StopRequest>& stop,
                    std::string& message);

// Runs the machine described by config with the console on stdin/stdout.
int run_machine(const MachineConfig& config);

// `bt86 debug`: the machine under the debugger (monitor/debugger/).
int debug_machine(const DebugOptions& options);

// main(): parse, run, print.
int bt86_main(int argc, char** argv);

}  // namespace bt86
