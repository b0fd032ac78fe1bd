// What the debugger (REPL and gdb stub) needs from a backend: a vCPU it can
// stop, step and resume at exact guest instructions, and its state.
//
// Both backends implement it (BT: runtime/bt/bt_debug_target.h, KVM:
// monitor/kvm/kvm_debug_target.h). Memory is the Machine's and is read and
// written here through the guest's page tables without side effects (no
// accessed/dirty bits), so looking at the guest never changes it. Writes go
// through memory_written() so a backend can drop what it derived from the
// bytes (BT: translations, shadow page tables).
//
// Threads: everything belongs to the debugger's thread except interrupt(),
// which any thread (or a signal handler) may call while resume() runs.
//
//   DebugStop s = target.resume();   // until a breakpoint, watchpoint, exit
//   if (s.kind == DebugStop::Kind::kBreakpoint) show(target.state());
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "monitor/backend.h"
#include "monitor/cpu_state.h"

namespace bt86 {

class Machine;
class BtDebugTarget;

struct DebugStop {
  enum class Kind {
    kStep,         // step() ran one instruction.
    kBreakpoint,   // About to execute a breakpoint's instruction.
    kWatchpoint,   // A store changed watched bytes (address says which).
    kInterrupted,  // interrupt() from another thread (Ctrl-C, gdb ^C).
    kExited,       // The guest stopped for good; exit says how.
  };
  Kind kind = Kind::kStep;
  uint32_t address = 0;  // kWatchpoint: the first changed byte (linear).
  VcpuExit exit;         // kExited.
};

class DebugTarget {
 public:
  virtual ~DebugTarget() = default;

  virtual std::string_view backend_name() const = 0;
  virtual Machine& machine() = 0;
  virtual CpuState state() const = 0;
  virtual void set_state(const CpuState& state) = 0;

  // Runs exactly one guest instruction (or delivers one pending event).
  virtual DebugStop step() = 0;
  // Runs until a breakpoint, watchpoint, interrupt() or the guest's end. A
  // breakpoint at the current EIP does not stop it before that instruction.
  virtual DebugStop resume() = 0;
  virtual void interrupt() = 0;

  // Breakpoints at guest linear EIPs (the instruction's first byte).
  virtual void insert_breakpoint(uint32_t eip) = 0;
  virtual void remove_breakpoint(uint32_t eip) = 0;
  // Stop after a store changes any byte of [linear, linear + length).
  // Returns false with why set when the range cannot be watched.
  virtual bool insert_watchpoint(uint32_t linear, uint32_t length, std::string* why) = 0;
  virtual void remove_watchpoint(uint32_t linear, uint32_t length) = 0;

  // The VMM changed guest-physical memory (debugger writes).
  virtual void memory_written(uint32_t physical, uint32_t length) = 0;

  // The BT-only views (translations, cache, traces, spaces), or nullptr.
  virtual BtDebugTarget* bt() { return nullptr; }
};

}  // namespace bt86
