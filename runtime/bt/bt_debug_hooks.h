// Where the BT dispatcher lets a debugger in (runtime/bt/bt_debug_target.h).
//
// The dispatcher asks before every entry into the cache, so a breakpoint
// or a step is exact to the guest instruction: a unit whose guest range
// holds a breakpoint is never entered (the instructions run one by one as
// single-instruction units until the breakpoint's EIP comes up), and units
// that hold one are retired when it is inserted so no chained jump or
// indirect lookup reaches them. Watchpoints are traced frames: the store
// faults, is emulated, and the changed bytes are reported here; a store
// that no longer faults (adapted after repeated trace faults, or made by
// a callout) is reported by the runtime as it writes.
#pragma once

#include <cstdint>

#include "shadow/trace_kind.h"
#include "translator/translation_unit.h"

namespace bt86 {

class BtDebugHooks {
 public:
  virtual ~BtDebugHooks() = default;
  // Before dispatching at eip: true makes run() return kStopRequested with
  // the state saved at eip.
  virtual bool stop_before(uint32_t eip) = 0;
  // Called once per entry into unit: true to run only its first instruction
  // (as a single-instruction unit) instead.
  virtual bool run_single(const TranslationUnit& unit) = 0;
  // Whether unit may be reached without the dispatcher (chained jumps,
  // indirect lookups): not while it holds a breakpoint.
  virtual bool may_enter_directly(const TranslationUnit& unit) = 0;
  // A store faulted on a traced frame (before it is emulated).
  virtual void trace_fault(uint32_t physical, TraceKinds kinds) = 0;
  // A trace write: an emulated store changed [physical, physical + length)
  // of a frame traced with kinds, or a store the runtime made itself (a
  // callout, an adapted store: no trace fault) wrote that range.
  virtual void traced_write(uint32_t physical, uint32_t length, TraceKinds kinds) = 0;
};

}  // namespace bt86
