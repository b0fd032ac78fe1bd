// The backend interface: how the VMM runs a vCPU without knowing whether
// translated code (BT) or hardware assist (KVM) does the work.
//
// A backend is chosen by name, creates vCPUs over a Machine, and each vCPU
// runs until something the VMM must act on. Device I/O never surfaces here:
// both backends dispatch it to the Machine's buses themselves, which is what
// keeps the device models identical across backends.
//
//   auto backend = make_backend("bt", options);   // throws BackendUnavailable
//   auto vcpu = backend->create_vcpu(machine);
//   vcpu->set_state(boot_state);
//   VcpuExit exit = vcpu->run();
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "monitor/cpu_state.h"

namespace bt86 {

class Machine;

struct VcpuExit {
  enum class Kind {
    kDebugExit,  // The guest wrote to the isa-debug-exit port; see status.
    kReset,     // The guest asked for a reset (8042 pulse, port 0x92, triple fault with --no-reboot
                // semantics).
    kPowerOff,  // The guest halted with interrupts disabled and nothing can wake it.
    kTripleFault,    // Shutdown: an exception while delivering a double fault.
    kStopRequested,  // request_stop(): user quit, --timeout, the debugger.
    kError,          // The backend cannot continue (message says why).
  };
  Kind kind = Kind::kError;
  int status = 0;  // For kDebugExit: the process exit status, (v << 1) | 1.
  std::string message;
};

class Vcpu {
 public:
  virtual ~Vcpu() = default;
  // Runs the guest until an exit. May be called again after any exit except
  // kError to continue.
  virtual VcpuExit run() = 0;
  virtual CpuState state() const = 0;
  virtual void set_state(const CpuState& state) = 0;
  // Thread-safe and async-signal-safe: makes a running run() return
  // kStopRequested within bounded time.
  virtual void request_stop() = 0;
  // What the backend counted (for --stats); empty if it counts nothing.
  virtual std::string statistics() const { return {}; }
};

struct BackendOptions {
  // KVM: run even where /dev/kvm has no hardware virtualization behind it.
  bool allow_software_kvm = false;
  // Count what --stats reports (BT: per-unit execution counters).
  bool collect_statistics = false;
  // BT: retranslate instructions that keep taking trace faults.
  bool adaptive_retranslation = true;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;
  virtual std::unique_ptr<Vcpu> create_vcpu(Machine& machine) = 0;
};

// Thrown when a backend cannot run on this host; what() names the reason in
// words a user can act on.
class BackendUnavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// "bt" or "kvm". Throws BackendUnavailable (unknown name, not built yet, or
// the host cannot run it).
std::unique_ptr<Backend> make_backend(std::string_view name, const BackendOptions& options);

}  // namespace bt86
