// What a device may ask of the machine as a whole: a reset, a debug exit, a
// change of the A20 gate. Devices that control the machine (the keyboard
// controller's output port, port 0x92, isa-debug-exit) get a MachineControl&
// through their constructor instead of reaching into the VMM, so the device
// models stay independent of any backend and tests record the requests.
//
// Requests are asynchronous from the guest's point of view: the machine acts
// on them when the current I/O instruction completes.
#pragma once

namespace bt86 {

class MachineControl {
 public:
  virtual ~MachineControl() = default;
  // A CPU reset (keyboard controller pulse of output line 0, port 0x92 bit 0).
  virtual void request_reset() = 0;
  // isa-debug-exit: the VMM process exits with status (already encoded as
  // (value << 1) | 1, so always odd).
  virtual void request_debug_exit(int status) = 0;
  // The A20 gate as one device drives it. On a PC the gate is the OR of the
  // keyboard controller's output port bit 1 and port 0x92 bit 1; each device
  // reports only its own bit, and the machine combines them if it models A20.
  virtual void set_a20(bool enabled) = 0;
};

}  // namespace bt86
