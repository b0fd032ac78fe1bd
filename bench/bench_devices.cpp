// Device-model costs that every guest I/O instruction pays on top of the
// backend's exit or callout: finding the device on the bus, and the work of
// the busiest device, the serial port.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <span>

#include "devices/bus.h"
#include "devices/clock.h"
#include "devices/debug_exit.h"
#include "devices/i8042.h"
#include "devices/machine_control.h"
#include "devices/pci_config_space.h"
#include "devices/pic_8259.h"
#include "devices/pit_8254.h"
#include "devices/port92.h"
#include "devices/post_code_port.h"
#include "devices/rtc_cmos.h"
#include "devices/system_control_port_b.h"
#include "devices/uart_16550.h"

namespace bt86 {
namespace {

class IgnoringMachineControl final : public MachineControl {
 public:
  void request_reset() override {}
  void request_debug_exit(int) override {}
  void set_a20(bool) override {}
};

class DiscardingOutput final : public SerialOutput {
 public:
  void write(std::span<const uint8_t> bytes) override { benchmark::DoNotOptimize(bytes.data()); }
};

// The PC's legacy devices on one port bus: 15 ranges, as the machine has.
struct PcPortBus {
  PcPortBus() {
    pic.attach(ports);
    ports.attach(Pit8254::kBase, Pit8254::kPortCount, pit);
    ports.attach(SystemControlPortB::kBase, SystemControlPortB::kPortCount, port_b);
    kbc.attach(ports);
    ports.attach(RtcCmos::kBase, RtcCmos::kPortCount, rtc);
    ports.attach(PostCodePort::kBase, PostCodePort::kPortCount, post);
    ports.attach(Port92::kBase, Port92::kPortCount, port92);
    ports.attach(DebugExit::kBase, DebugExit::kPortCount, debug_exit);
    ports.attach(Uart16550::kCom1Base, Uart16550::kPortCount, com1);
    ports.attach(0x2F8, Uart16550::kPortCount, com2);
    ports.attach(PciConfigSpace::kBase, PciConfigSpace::kPortCount, pci);
  }

  DebugLog log;
  Bus ports{"port", log};
  ManualClock clock;
  FixedWallClock wall{0};
  IgnoringMachineControl control;
  DiscardingOutput output;
  Pic8259 pic{log};
  Pit8254 pit{clock, IrqLine(pic, 0), log};
  SystemControlPortB port_b{pit};
  I8042 kbc{control, IrqLine(pic, 1), IrqLine(pic, 12), log};
  RtcCmos rtc{clock, wall, 128 << 20, IrqLine(pic, 8), log};
  PostCodePort post;
  Port92 port92{control};
  DebugExit debug_exit{control};
  Uart16550 com1{output, IrqLine(pic, 4), log};
  Uart16550 com2{output, IrqLine(pic, 3), log};
  PciConfigSpace pci;
};

void BM_BusDispatchRead(benchmark::State& state) {
  PcPortBus pc;
  uint8_t value = 0;
  for (auto _ : state) {
    pc.ports.read(PostCodePort::kBase, {&value, 1});
    benchmark::DoNotOptimize(value);
  }
}
BENCHMARK(BM_BusDispatchRead);

void BM_SerialByteWrite(benchmark::State& state) {
  PcPortBus pc;
  const uint8_t ier_thre = 0x02, out2 = 0x08;
  pc.ports.write(Uart16550::kCom1Base + 4, {&out2, 1});
  pc.ports.write(Uart16550::kCom1Base + 1, {&ier_thre, 1});  // Linux's interrupt-driven TX.
  const uint8_t byte = 'x';
  for (auto _ : state) {
    pc.ports.write(Uart16550::kCom1Base, {&byte, 1});
  }
}
BENCHMARK(BM_SerialByteWrite);

}  // namespace
}  // namespace bt86
