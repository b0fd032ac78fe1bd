// QEMU's isa-debug-exit device as test guests use it: iobase 0xf4, iosize 4.
// A guest write of v (any width up to 4 bytes) asks the machine to stop with
// process exit status (v << 1) | 1, so a guest can report success or failure
// and the status is always odd (bt86's own exit codes are even). Reads
// return 0, as in QEMU.
//
//   DebugExit debug_exit(machine_control);
//   ports.attach(DebugExit::kBase, DebugExit::kPortCount, debug_exit);
#pragma once

#include <cstdint>

#include "devices/bus.h"
#include "devices/machine_control.h"

namespace bt86 {

// The same encoding as monitor/exit_status.h's debug_exit_status(), repeated
// so the devices do not depend on the monitor: only the low 8 bits of the
// value survive, as with QEMU's exit().
constexpr int debug_exit_code(uint32_t value) {
  return static_cast<int>(((value & 0xFF) << 1) | 1);
}

class DebugExit final : public BusDevice {
 public:
  static constexpr uint16_t kBase = 0xF4;
  static constexpr uint16_t kPortCount = 4;

  explicit DebugExit(MachineControl& control) : control_(control) {}

  std::string_view name() const override { return "isa-debug-exit"; }
  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

 private:
  MachineControl& control_;
};

}  // namespace bt86
