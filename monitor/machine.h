// The Machine: one bt86 PC, the same for every backend.
//
// It owns guest RAM, the memory map, the port and MMIO buses, every device
// at its standard PC place, the CPUID model and the machine's event
// processing. A backend owns only the vCPU: it runs guest code, dispatches
// port and MMIO accesses to ports()/mmio(), asks interrupt_pending() /
// acknowledge_interrupt() at instruction boundaries, calls service_events()
// when next_deadline_ns() has passed or wait_for_event() returned, and stops
// when stop_request() is set. That division is what makes a comparison of
// BT and KVM honest: everything but instruction execution is this code.
//
// Devices (port, IRQ):
//   PIC 8259 pair 0x20/0xA0 (+ ELCR 0x4D0)    PIT 8254 0x40-0x43, IRQ 0
//   i8042 0x60/0x64, IRQ 1/12                  port B 0x61 (PIT channel 2)
//   RTC/CMOS 0x70-0x71, IRQ 8                  POST code 0x80
//   port 0x92 (A20, reset)                     isa-debug-exit 0xF4-0xF7
//   COM1 16550A 0x3F8-0x3FF, IRQ 4             PCI config mechanism #1 0xCF8
//
// Threads: the devices, buses and event processing belong to the vCPU
// thread. request_stop() and wake() may be called from any thread (the
// console's signal watcher, the --timeout watchdog, the debugger); the first
// stop request wins and later ones are ignored.
//
//   MachineParts parts;
//   parts.serial = &console;
//   Machine machine(std::move(parts));
//   LoadedKernel k = load_kernel(machine.memory(), machine.memory_map(), images);
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "devices/bus.h"
#include "devices/clock.h"
#include "devices/debug_exit.h"
#include "devices/debug_log.h"
#include "devices/i8042.h"
#include "devices/machine_control.h"
#include "devices/pci_config_space.h"
#include "devices/pic_8259.h"
#include "devices/pit_8254.h"
#include "devices/port92.h"
#include "devices/post_code_port.h"
#include "devices/rtc_cmos.h"
#include "devices/serial_output.h"
#include "devices/system_control_port_b.h"
#include "devices/uart_16550.h"
#include "monitor/console_input.h"
#include "monitor/cpuid_model.h"
#include "monitor/guest_memory.h"
#include "monitor/memory_map.h"

namespace bt86 {

// What the user asked for on the command line.
struct MachineConfig {
  uint64_t ram_size = 256ull << 20;
  std::string kernel_path;
  std::optional<std::string> initrd_path;
  std::string cmdline;
  std::string backend = "bt";
  // Seconds of wall time before the run stops with ExitStatus::kTimeout.
  std::optional<double> timeout_seconds;
  // Where the DebugLog writes; empty: disabled.
  std::string debug_log_path;
  bool allow_software_kvm = false;
  bool stats = false;     // Print the backend's statistics at exit (--stats).
  bool no_adapt = false;  // BT: no adaptive retranslation (--no-adapt).
};

// Why the machine wants the vCPU to stop.
struct StopRequest {
  enum class Kind {
    kDebugExit,  // isa-debug-exit; status is the process exit status.
    kReset,      // 8042 or port 0x92 reset.
    kUserQuit,   // Ctrl-A x on the console.
    kTimeout,    // --timeout expired.
    kSignal,     // A termination signal (status is its number).
  };
  Kind kind;
  int status = 0;
  friend bool operator==(const StopRequest&, const StopRequest&) = default;
};

// What the machine is built from. Everything not given gets the real thing
// (host monotonic and wall clocks, no debug log, no console input); tests
// pass a ManualClock and a recording SerialOutput.
struct MachineParts {
  uint64_t ram_size = 256ull << 20;
  SerialOutput* serial = nullptr;  // Required.
  ConsoleInput* console_input = nullptr;
  std::unique_ptr<Clock> clock;
  std::unique_ptr<WallClock> wall_clock;
  std::FILE* debug_log = nullptr;
};

class Machine {
 public:
  // Throws MemoryMapError for a bad RAM size, GuestMemoryError or
  // std::system_error if the host cannot provide RAM or an eventfd.
  explicit Machine(MachineParts parts);
  ~Machine();
  Machine(const Machine&) = delete;
  Machine& operator=(const Machine&) = delete;

  GuestMemory& memory() { return memory_; }
  const MemoryMap& memory_map() const { return map_; }
  Bus& ports() { return ports_; }
  Bus& mmio() { return mmio_; }
  const CpuidModel& cpuid() const { return cpuid_; }
  DebugLog& log() { return log_; }
  const Clock& clock() const { return *clock_; }

  // Advances the timed devices to now, moves pending console input into the
  // UART while it has room, and reads the console if it is readable.
  void service_events();
  // The earliest host time (Clock ns) at which a device has work, if any.
  std::optional<uint64_t> next_deadline_ns() const;
  // Blocks until the deadline passes, console input arrives, or another
  // thread calls wake() / request_stop(). Returns at once if a stop request
  // is pending. Never spins: one ppoll.
  void wait_for_event(std::optional<uint64_t> deadline_ns);
  // Any thread: makes a current or the next wait_for_event() return.
  void wake();

  bool interrupt_pending() const { return pic_.interrupt_pending(); }
  uint8_t acknowledge_interrupt() { return pic_.acknowledge(); }
  // Called on the vCPU thread whenever the PIC's INTR output changes.
  void set_interrupt_listener(std::function<void(bool)> listener);

  // Any thread. The first request is kept.
  void request_stop(StopRequest request);
  std::optional<StopRequest> stop_request() const;
  // For the debugger: continue after a handled stop.
  void clear_stop_request();

  // The A20 gate as a device (8042 or port 0x92) last set it. bt86 does
  // not model the gate: guests run in protected mode with A20 on, addresses
  // never wrap at 1 MiB, and disabling it is only logged.
  bool a20_enabled() const { return a20_; }

  const Uart16550& uart() const { return uart_; }
  const Pic8259& pic() const { return pic_; }
  const Pit8254& pit() const { return pit_; }
  const RtcCmos& rtc() const { return rtc_; }

 private:
  class Control final : public MachineControl {
   public:
    explicit Control(Machine& machine) : machine_(machine) {}
    void request_reset() override;
    void request_debug_exit(int status) override;
    void set_a20(bool enabled) override;

   private:
    Machine& machine_;
  };

  void poll_console(int timeout_ms);
  void feed_uart();

  DebugLog log_;
  std::unique_ptr<Clock> clock_;
  std::unique_ptr<WallClock> wall_clock_;
  MemoryMap map_;
  GuestMemory memory_;
  CpuidModel cpuid_;
  Bus ports_;
  Bus mmio_;
  ConsoleInput* console_input_;
  std::vector<uint8_t> pending_input_;
  int wake_fd_ = -1;

  mutable std::mutex stop_mutex_;
  std::optional<StopRequest> stop_request_;
  std::atomic<bool> stop_pending_{false};
  bool a20_ = true;
  std::function<void(bool)> interrupt_listener_;

  Control control_{*this};
  Pic8259 pic_;
  Pit8254 pit_;
  SystemControlPortB port_b_;
  I8042 i8042_;
  RtcCmos rtc_;
  Port92 port92_;
  PostCodePort post_code_;
  DebugExit debug_exit_;
  Uart16550 uart_;
  PciConfigSpace pci_;
};

}  // namespace bt86
