#include "monitor/cli.h"

#include <unistd.h>

#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "monitor/console.h"
#include "monitor/exit_status.h"
#include "monitor/kernel_loader.h"
#include "monitor/machine_setup.h"
#include "monitor/termination_signals.h"

namespace bt86 {

namespace {

constexpr char kVersion[] = "bt86 0.1.0";

constexpr char kExitCodes[] = R"(Exit status:
  0        the guest powered off or reset, or the user quit (Ctrl-A x)
  2        bad command line (unknown option, bad size, missing or unreadable file)
  4        the kernel or initrd is malformed, truncated or unsupported
  6        the chosen backend cannot run on this host
  8        the guest crashed (triple fault, or a state no CPU could continue from)
  10       --timeout expired
  12       host error (out of memory, a failed system call)
  odd N    the guest wrote v to the isa-debug-exit port 0xf4: N = (v << 1) | 1
)";

int status(ExitStatus s) {
  return static_cast<int>(s);
}

// The watchdog behind --timeout: stops the run after the given wall time.
class Watchdog {
 public:
  Watchdog(double seconds, std::function<void()> on_expiry)
      : thread_([this, seconds, on_expiry = std::move(on_expiry)] {
          std::unique_lock lock(mutex_);
          const auto limit = std::chrono::duration<double>(seconds);
          if (!cv_.wait_for(lock, limit, [this] { return done_; })) on_expiry();
        }) {}
  ~Watchdog() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

}  // namespace

ParsedCommandLine parse_command_line(const std::vector<std::string>& args) {
  CLI::App app{"bt86: a virtual machine monitor for 32-bit x86 guests (binary translation or KVM)",
               "bt86"};
  app.footer(kExitCodes);
  app.set_version_flag("--version", kVersion);
  app.require_subcommand(1);

  MachineConfig config;
  std::string mem = "256M";
  std::string initrd;
  double timeout = 0;
  CLI::App* run = app.add_subcommand("run", "Boot a kernel and run it on the serial console");
  CLI::App* debug = app.add_subcommand(
      "debug", "Boot a kernel stopped at its first instruction, under the debugger REPL or gdb");
  // run and debug build the same machine.
  for (CLI::App* command : {run, debug}) {
    command->footer(kExitCodes);
    command->add_option("--kernel", config.kernel_path, "Linux bzImage or Multiboot ELF kernel")
        ->required();
    command->add_option("--initrd", initrd, "initial ramdisk (Linux) or first module (Multiboot)");
    command->add_option("--append", config.cmdline, "kernel command line");
    command->add_option("--mem", mem, "guest RAM, 16M to 3G (suffix K, M or G)")
        ->capture_default_str();
    command->add_option("--backend", config.backend, "execution engine")
        ->check(CLI::IsMember({"bt", "kvm"}))
        ->capture_default_str();
    command->add_option("--debug-log", config.debug_log_path,
                        "write the VMM's debug log to this file");
    command->add_flag("--allow-software-kvm", config.allow_software_kvm,
                      "run the kvm backend even without hardware virtualization behind /dev/kvm");
    command->add_flag("--no-adapt", config.no_adapt,
                      "bt: do not retranslate instructions that keep taking trace faults");
  }
  CLI::Option* timeout_option =
      run->add_option("--timeout", timeout, "stop with status 10 after this many seconds")
          ->check(CLI::PositiveNumber);
  run->add_flag("--stats", config.stats, "print the backend's statistics at exit");
  DebugOptions debug_options;
  std::string script, symbols;
  uint16_t gdb_port = 0;
  CLI::Option* script_option =
      debug->add_option("--script", script, "run the debugger commands in this file")
          ->check(CLI::ExistingFile);
  CLI::Option* symbols_option =
      debug->add_option("--symbols", symbols, "guest symbols: a System.map or an ELF file")
          ->check(CLI::ExistingFile);
  CLI::Option* gdb_option =
      debug->add_option("--gdb", gdb_port, "serve the gdb remote protocol on 127.0.0.1:PORT");
  script_option->excludes(gdb_option);

  ParsedCommandLine result;
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    std::ostringstream out, err;
    result.exit_status = app.exit(e, out, err) == 0 ? 0 : status(ExitStatus::kUsage);
    result.out = out.str();
    result.err = err.str();
    return result;
  }
  try {
    config.ram_size = parse_memory_size(mem);
    MemoryMap check(config.ram_size);
  } catch (const MemoryMapError& e) {
    result.exit_status = status(ExitStatus::kUsage);
    result.err = fmt::format("bt86: --mem: {}\n", e.what());
    return result;
  }
  if (!initrd.empty()) config.initrd_path = initrd;
  if (timeout_option->count() > 0) config.timeout_seconds = timeout;
  if (debug->parsed()) {
    debug_options.machine = config;
    if (script_option->count() > 0) debug_options.script = script;
    if (symbols_option->count() > 0) debug_options.symbols = symbols;
    if (gdb_option->count() > 0) debug_options.gdb_port = gdb_port;
    result.debug = debug_options;
    return result;
  }
  result.run = config;
  return result;
}

int run_exit_status(const VcpuExit& exit, const std::optional<StopRequest>& stop,
                    std::string& message) {
  message.clear();
  switch (exit.kind) {
    case VcpuExit::Kind::kDebugExit:
      return exit.status;
    case VcpuExit::Kind::kReset:
      message = "bt86: the guest reset the machine";
      return status(ExitStatus::kOk);
    case VcpuExit::Kind::kPowerOff:
      message = "bt86: the guest powered off";
      return status(ExitStatus::kOk);
    case VcpuExit::Kind::kTripleFault:
      message = fmt::format("bt86: the guest crashed (triple fault){}",
                            exit.message.empty() ? "" : ": " + exit.message);
      return status(ExitStatus::kGuestCrashed);
    case VcpuExit::Kind::kError:
      message = fmt::format("bt86: the backend cannot continue: {}", exit.message);
      return status(ExitStatus::kHostError);
    case VcpuExit::Kind::kStopRequested:
      break;
  }
  if (!stop) {
    message = "bt86: stopped";
    return status(ExitStatus::kOk);
  }
  switch (stop->kind) {
    case StopRequest::Kind::kDebugExit:
      return stop->status;
    case StopRequest::Kind::kReset:
      message = "bt86: the guest reset the machine";
      return status(ExitStatus::kOk);
    case StopRequest::Kind::kUserQuit:
      message = "bt86: quit";
      return status(ExitStatus::kOk);
    case StopRequest::Kind::kTimeout:
      message = "bt86: --timeout expired";
      return status(ExitStatus::kTimeout);
    case StopRequest::Kind::kSignal:
      message = fmt::format("bt86: terminated by signal {}", stop->status);
      return 128 + stop->status;
  }
  return status(ExitStatus::kHostError);
}

int run_machine(const MachineConfig& config) {
  Console console(STDIN_FILENO, STDOUT_FILENO);
  std::atomic<Machine*> running_machine{nullptr};
  std::atomic<Vcpu*> running_vcpu{nullptr};
  const auto stop_everything = [&](StopRequest request) {
    if (Machine* m = running_machine.load()) m->request_stop(request);
    if (Vcpu* v = running_vcpu.load()) v->request_stop();
  };
  TerminationSignals signals([&](int signo) {
    console.restore_terminal();
    stop_everything({StopRequest::Kind::kSignal, signo});
  });

  auto built = set_up_machine(config, console, &console);
  if (auto* failed = std::get_if<ExitStatus>(&built)) return status(*failed);
  MachineSetup& setup = std::get<MachineSetup>(built);
  Machine* machine = setup.machine.get();
  const LoadedKernel& kernel = setup.kernel;

  std::unique_ptr<Backend> backend;
  std::unique_ptr<Vcpu> vcpu;
  try {
    backend = make_backend(config.backend, {.allow_software_kvm = config.allow_software_kvm,
                                            .collect_statistics = config.stats,
                                            .adaptive_retranslation = !config.no_adapt});
    vcpu = backend->create_vcpu(*machine);
  } catch (const BackendUnavailable& e) {
    fmt::print(stderr, "bt86: {}\n", e.what());
    return status(ExitStatus::kBackendUnavailable);
  }
  vcpu->set_state(kernel.entry);
  running_machine = machine;
  running_vcpu = vcpu.get();

  int exit_status;
  std::string message;
  {
    std::optional<Watchdog> watchdog;
    if (config.timeout_seconds) {
      watchdog.emplace(*config.timeout_seconds,
                       [&] { stop_everything({StopRequest::Kind::kTimeout}); });
    }
    console.begin_raw_mode();
    const VcpuExit exit = vcpu->run();
    running_vcpu = nullptr;
    console.restore_terminal();
    exit_status = run_exit_status(exit, machine->stop_request(), message);
    // fputs, not fmt::print: a closed stderr (bt86 --stats 2>&1 | head) is
    // no reason to abort, and fmt throws on a failed write.
    if (config.stats) std::fputs(vcpu->statistics().c_str(), stderr);
  }
  running_machine = nullptr;
  if (!message.empty()) std::fputs((message + "\n").c_str(), stderr);
  if (signals.received()) {
    console.restore_terminal();
    signals.reraise();
  }
  return exit_status;
}

int debug_machine(const DebugOptions& options) {
  std::unique_ptr<Backend> backend;
  try {
    // No execution counters: `translate` shows the code a plain run executes.
    backend = make_backend(options.machine.backend,
                           {.allow_software_kvm = options.machine.allow_software_kvm,
                            .adaptive_retranslation = !options.machine.no_adapt});
  } catch (const BackendUnavailable& e) {
    fmt::print(stderr, "bt86: {}\n", e.what());
    return status(ExitStatus::kBackendUnavailable);
  }
  return run_debug_session(options, *backend);
}

int bt86_main(int argc, char** argv) {
  // A closed stdout (bt86 ... | head) must not kill the VMM mid-run.
  std::signal(SIGPIPE, SIG_IGN);
  const ParsedCommandLine parsed =
      parse_command_line(std::vector<std::string>(argv + 1, argv + argc));
  if (parsed.debug) return debug_machine(*parsed.debug);
  if (!parsed.run) {
    std::fputs(parsed.out.c_str(), stdout);
    std::fputs(parsed.err.c_str(), stderr);
    return parsed.exit_status;
  }
  return run_machine(*parsed.run);
}

}  // namespace bt86
