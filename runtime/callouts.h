// Callouts: guest instructions the translator hands to C++ (privileged,
// rare, or without a 64-bit-mode encoding).
//
// One table maps each CalloutId to its function and to what it touches, so
// that the runtime saves only what it must around it (today every exit saves
// the FPU image anyway; may_touch_fpu is what lets a cheaper path skip that).
// A callout sees the full guest CpuState at the instruction (EIP = its
// address) and guest memory through a checked accessor; it either completes
// the instruction (advancing EIP), halts, or raises an exception with state
// left as the hardware would (faults: at the instruction; traps: after it).
#pragma once

#include <cstdint>
#include <optional>

#include "monitor/cpu_state.h"
#include "runtime/flat_harness.h"
#include "translator/guest_decoder.h"
#include "translator/opcode_table.h"

namespace bt86 {

// Guest linear memory as a callout may touch it; false means the access
// faulted and *fault holds the exception to raise.
class GuestMemoryAccess {
 public:
  virtual ~GuestMemoryAccess() = default;
  virtual bool read(uint32_t address, void* data, uint32_t size, GuestException* fault) = 0;
  virtual bool write(uint32_t address, const void* data, uint32_t size, GuestException* fault) = 0;
};

struct CalloutResult {
  enum class Action { kContinue, kHalt, kException };
  Action action = Action::kContinue;
  GuestException exception;
};

struct CalloutEnvironment {
  CpuState& state;
  GuestMemoryAccess& memory;
  const DecodedInstruction& instruction;
};

using CalloutFunction = CalloutResult (*)(CalloutEnvironment& env);

struct CalloutSpec {
  CalloutId id;
  const char* name;
  CalloutFunction function;
  bool writes_memory;
  bool may_touch_fpu;
};

const CalloutSpec& callout_spec(CalloutId id);

}  // namespace bt86
