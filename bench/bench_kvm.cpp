// The KVM backend's exit round trip: one guest `out` to a port, through
// KVM_RUN's exit to user space, the Machine's port bus (the POST code port,
// which does nothing) and back into the guest. This is the price every
// device access pays under KVM with user-space devices, and what the BT
// backend's in-process callout is compared with.
//
// The guest is 12 bytes of flat 32-bit code, loaded with the same boot state
// the loaders build:  l: out 0x80, al; loop l; out 0xf4, al (debug exit).
// One benchmark iteration runs kExitsPerRun port exits plus the debug exit.
// Where the KVM backend cannot run (no /dev/kvm, or a /dev/kvm without
// hardware virtualization: its exits would measure the software
// hypervisor), the benchmark reports "unavailable" with the reason.
#include <benchmark/benchmark.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "monitor/backend.h"
#include "monitor/flat_boot_state.h"
#include "monitor/machine.h"

namespace bt86 {
namespace {

constexpr uint32_t kExitsPerRun = 1000;
constexpr uint32_t kGdtAddress = 0x1000;
constexpr uint32_t kCodeAddress = 0x2000;

class DiscardSerial final : public SerialOutput {
 public:
  void write(std::span<const uint8_t>) override {}
};

void BM_KvmPortIoExit(benchmark::State& state) {
  DiscardSerial serial;
  MachineParts parts;
  parts.ram_size = 16ull << 20;
  parts.serial = &serial;
  Machine machine(std::move(parts));
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Vcpu> vcpu;
  try {
    backend = make_backend("kvm", {});
    vcpu = backend->create_vcpu(machine);
  } catch (const BackendUnavailable& e) {
    state.SkipWithError((std::string("unavailable: ") + e.what()).c_str());
    return;
  }
  constexpr std::array<uint8_t, 8> code = {
      0xE6, 0x80,  // l: out 0x80, al
      0xE2, 0xFC,  //    loop l
      0xE6, 0xF4,  //    out 0xf4, al  (al = 0: debug-exit status 1)
      0xEB, 0xFE,  //    jmp $
  };
  machine.memory().write(kCodeAddress, code);
  CpuState start = flat_boot_state(machine.memory(), kGdtAddress, kCodeAddress);
  start.reg(Gpr::kEcx) = kExitsPerRun;
  start.reg(Gpr::kEax) = 0;
  start.reg(Gpr::kEsp) = 0x8000;

  const auto begin = std::chrono::steady_clock::now();
  for (auto _ : state) {
    vcpu->set_state(start);
    const VcpuExit exit = vcpu->run();
    machine.clear_stop_request();
    if (exit.kind != VcpuExit::Kind::kDebugExit) {
      state.SkipWithError(("the guest did not reach its debug exit: " + exit.message).c_str());
      return;
    }
  }
  const std::chrono::duration<double, std::micro> elapsed =
      std::chrono::steady_clock::now() - begin;
  const auto exits = static_cast<int64_t>(state.iterations()) * (kExitsPerRun + 1);
  state.SetItemsProcessed(exits);
  // Includes set_state() per iteration, amortised over kExitsPerRun exits.
  state.counters["us_per_exit"] = elapsed.count() / static_cast<double>(exits);
}
BENCHMARK(BM_KvmPortIoExit)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace bt86
