// The seam between the BT engine and the emulation of the x86 system
// architecture (event delivery through the IDT and TSS, segment loads and
// their protection checks, far transfers, iret, sysenter/sysexit, control
// and debug registers, descriptor-table registers, MSRs, port I/O).
//
// The emulation is written as plain functions over a SystemContext so that
// it can be unit-tested against guest memory without running translated
// code, and so the engine stays the only owner of shadows, windows and the
// translation cache: the emulation changes CpuState and guest memory, then
// tells the engine what changed through the notification calls below.
//
// Conventions every function in runtime/system/ follows:
// - On entry cpu().eip is the address of the instruction being emulated.
// - kContinue: the instruction completed; EIP/ESP/flags/segments are final.
// - kException: nothing architectural changed except what the SDM says a
//   faulting instruction may leave (e.g. CR2 is not set here: the engine's
//   delivery does that); the engine delivers `exception` with EIP at the
//   instruction (faults) — use deliver_event() for that.
// - kHalt: hlt executed; EIP is after it.
// - kShutdown: a triple fault (or a state no CPU could continue from); the
//   message says which.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "monitor/cpu_state.h"
#include "runtime/flat_harness.h"
#include "shadow/guest_linear_memory.h"
#include "shadow/guest_page_walker.h"
#include "shadow/trace_kind.h"

namespace bt86 {

class Machine;

class SystemContext {
 public:
  virtual ~SystemContext() = default;

  virtual CpuState& cpu() = 0;
  // Guest linear memory as the CPU's own implicit accesses see it (walks with
  // the current paging mode, sets A/D, keeps shadows coherent on writes).
  virtual GuestLinearMemory& linear_memory() = 0;
  // Port I/O buses, the CPUID model, the interrupt controller.
  virtual Machine& machine() = 0;

  // Notifications, called after CpuState has been updated.
  virtual void paging_changed() = 0;                  // CR0.PG/WP, CR3, CR4.PSE/PGE written.
  virtual void invalidate_page(uint32_t linear) = 0;  // invlpg.
  virtual void descriptor_tables_changed() = 0;       // GDTR, IDTR, LDTR or TR loaded.
  virtual void segments_changed() = 0;  // A segment register (hidden part) or CPL changed.
  // The emulation stored to guest frames that carry derived state (kinds is
  // never 0 here): the engine refreshes shadow descriptors (kDescriptorTable)
  // or drops translations (kCode) of [linear, linear + length).
  virtual void traced_memory_written(uint32_t linear, uint32_t length, TraceKinds kinds) = 0;

  // The guest's time-stamp counter: the engine owns its time base (rdtsc in
  // the cache reads the same counter); wrmsr to IA32_TIME_STAMP_COUNTER sets it.
  virtual uint64_t read_tsc() = 0;
  virtual void write_tsc(uint64_t value) = 0;
};

struct SystemOutcome {
  enum class Kind { kContinue, kException, kHalt, kShutdown };
  Kind kind = Kind::kContinue;
  GuestException exception;  // kException.
  std::string message;       // kShutdown.

  static SystemOutcome ok() { return {}; }
  bool continues() const { return kind == Kind::kContinue; }
  static SystemOutcome fault(uint8_t vector, std::optional<uint32_t> error_code = std::nullopt) {
    SystemOutcome o;
    o.kind = Kind::kException;
    o.exception.vector = vector;
    o.exception.error_code = error_code;
    return o;
  }
  static SystemOutcome halt() {
    SystemOutcome o;
    o.kind = Kind::kHalt;
    return o;
  }
  static SystemOutcome shutdown(std::string message) {
    SystemOutcome o;
    o.kind = Kind::kShutdown;
    o.message = std::move(message);
    return o;
  }
};

// The paging mode CpuState implies, or nullopt with paging off.
inline std::optional<PagingMode> paging_mode_of(const CpuState& cpu) {
  if (!(cpu.cr0 & cr0::kPg)) return std::nullopt;
  PagingMode m;
  m.cr3 = cpu.cr3;
  m.pse = cpu.cr4 & cr4::kPse;
  m.pge = cpu.cr4 & cr4::kPge;
  m.wp = cpu.cr0 & cr0::kWp;
  return m;
}

}  // namespace bt86
