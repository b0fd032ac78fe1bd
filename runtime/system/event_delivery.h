// Event delivery through the guest IDT (Vol. 3A 6.10-6.15; Vol. 2 INT n
// pseudo-code): interrupt and trap gates (32- and 16-bit), task gates, the
// privilege change to an inner level through the TSS, and the escalation of
// exceptions raised during delivery to #DF and to a triple fault.
//
// Contract (see system_context.h for the shared conventions):
// - cpu().eip is where the event returns to: the faulting instruction for a
//   fault, the next instruction for a trap or an external interrupt, and the
//   int n/int3/into instruction itself for software sources, whose
//   GuestEvent::instruction_length moves the return address past it (an
//   exception raised by their delivery — #GP for a gate DPL below CPL —
//   is then a fault at the instruction).
// - The result is kContinue (cpu() is at the handler's first instruction)
//   or kShutdown (a triple fault, or guest state bt86 does not emulate:
//   virtual-8086 mode, real mode, 16-bit TSSs); never kException: nested
//   exceptions are delivered here, serially or as #DF per Table 6-5.
// - CR2 is loaded when a #PF is delivered.
// - Pushed EFLAGS images carry RF as it is in cpu(); bt86 does not set RF in
//   the image of fault-class exceptions (QEMU does not either), which only
//   matters to guests using instruction breakpoints.
#pragma once

#include "runtime/system/guest_event.h"
#include "runtime/system/system_context.h"

namespace bt86 {

SystemOutcome deliver_event(SystemContext& ctx, const GuestEvent& event);

}  // namespace bt86
