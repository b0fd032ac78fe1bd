#include "monitor/debugger/debug_session.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include <fmt/format.h>

#include "monitor/backend.h"
#include "monitor/debugger/debugger_repl.h"
#include "monitor/debugger/gdb_stub.h"
#include "monitor/debugger/interrupt_watcher.h"
#include "monitor/exit_status.h"
#include "monitor/kvm/kvm_debug_target.h"
#include "monitor/machine_setup.h"
#include "runtime/bt/bt_debug_target.h"

namespace bt86 {
namespace {

int status(ExitStatus s) {
  return static_cast<int>(s);
}

class StdoutSerial final : public SerialOutput {
 public:
  void write(std::span<const uint8_t> bytes) override {
    std::fwrite(bytes.data(), 1, bytes.size(), stdout);
    std::fflush(stdout);
  }
};

std::unique_ptr<DebugTarget> make_target(Machine& machine, Backend& backend) {
  std::unique_ptr<Vcpu> vcpu = backend.create_vcpu(machine);
  if (auto* bt = dynamic_cast<BtVcpu*>(vcpu.get())) {
    vcpu.release();
    return std::make_unique<BtDebugTarget>(machine, std::unique_ptr<BtVcpu>(bt));
  }
  return make_kvm_debug_target(machine, std::move(vcpu));
}

// As for `bt86 run`: the guest's debug-exit status, crash, host error, or 0.
int exit_status_of(const std::optional<VcpuExit>& exit) {
  if (!exit) return status(ExitStatus::kOk);
  switch (exit->kind) {
    case VcpuExit::Kind::kDebugExit:
      return exit->status;
    case VcpuExit::Kind::kTripleFault:
      return status(ExitStatus::kGuestCrashed);
    case VcpuExit::Kind::kError:
      return status(ExitStatus::kHostError);
    default:
      return status(ExitStatus::kOk);
  }
}

}  // namespace

int run_debug_session(const DebugOptions& options, Backend& backend) {
  // Before any other thread, so they all inherit the blocked SIGINT.
  InterruptWatcher ctrl_c;
  const MachineConfig& config = options.machine;

  SymbolTable symbols;
  if (options.symbols) {
    try {
      symbols = SymbolTable::load(*options.symbols);
    } catch (const SymbolError& e) {
      fmt::print(stderr, "bt86: --symbols: {}\n", e.what());
      return status(ExitStatus::kUsage);
    }
  }
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> script(nullptr, &std::fclose);
  if (options.script) {
    script.reset(std::fopen(options.script->c_str(), "r"));
    if (!script) {
      fmt::print(stderr, "bt86: cannot read the script '{}': {}\n", *options.script,
                 std::strerror(errno));
      return status(ExitStatus::kUsage);
    }
  }
  StdoutSerial serial;
  auto built = set_up_machine(config, serial, nullptr);
  if (auto* failed = std::get_if<ExitStatus>(&built)) return status(*failed);
  MachineSetup& setup = std::get<MachineSetup>(built);
  Machine* machine = setup.machine.get();
  const LoadedKernel& kernel = setup.kernel;

  std::unique_ptr<DebugTarget> target;
  try {
    target = make_target(*machine, backend);
  } catch (const std::exception& e) {
    fmt::print(stderr, "bt86: cannot create the vCPU: {}\n", e.what());
    return status(ExitStatus::kBackendUnavailable);
  }
  target->set_state(kernel.entry);

  if (options.gdb_port) {
    try {
      GdbStub stub(*target, *options.gdb_port);
      fmt::print(stderr, "bt86: waiting for gdb on 127.0.0.1:{}\n", stub.port());
      return exit_status_of(stub.serve());
    } catch (const GdbStubError& e) {
      fmt::print(stderr, "bt86: --gdb: {}\n", e.what());
      return status(ExitStatus::kHostError);
    }
  }

  DebuggerRepl repl(*target, symbols, stdout, ctrl_c);
  fmt::print("bt86 debug: {} backend, stopped at the first guest instruction\n",
             target->backend_name());
  repl.execute("disas $eip 1");
  if (script) {
    repl.run_lines(script.get(), true);
  } else if (isatty(STDIN_FILENO)) {
    repl.run_interactive();
  } else {
    repl.run_lines(stdin, true);
  }
  std::fflush(stdout);
  return exit_status_of(repl.guest_exit());
}

}  // namespace bt86
