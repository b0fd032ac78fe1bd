// `bt86 debug`: the machine of `bt86 run`, stopped at its first guest
// instruction, under the REPL or the gdb stub.
//
// The guest's serial output goes to stdout, interleaved with the REPL's
// output in the order it happens (both go through the same FILE), so a
// script's transcript shows what the guest printed between two stops. The
// process exit status is the guest's (as for run) once it has ended, 0 if
// the session was quit before, and the run's usage/image/backend statuses
// for a machine that cannot be built.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "monitor/backend.h"
#include "monitor/machine.h"

namespace bt86 {

struct DebugOptions {
  MachineConfig machine;
  std::optional<std::string> script;   // Commands from this file instead of stdin.
  std::optional<std::string> symbols;  // System.map or ELF.
  std::optional<uint16_t> gdb_port;    // Serve the gdb remote protocol instead of the REPL.
};

// backend comes from make_backend() (monitor/backend.h); the vCPU it
// creates must be a BtVcpu or a KvmVcpu.
int run_debug_session(const DebugOptions& options, Backend& backend);

}  // namespace bt86
