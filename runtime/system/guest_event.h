// An event the vCPU delivers through the guest IDT: an exception, an
// external interrupt, or a software interrupt/exception (int n, int3, into).
//
// The source decides two things the SDM ties to it (Vol. 3A 6.12.1.1, 6.13):
// software sources are checked against the gate's DPL (#GP(vector*8+2) when
// CPL > DPL), and errors raised while delivering a hardware event (exception
// or external interrupt) carry the EXT bit in their error code.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "runtime/flat_harness.h"

namespace bt86 {

enum class EventSource {
  kException,          // Raised by the CPU (faults, traps, #DF); EXT=1 for nested errors.
  kExternalInterrupt,  // From the PIC (or NMI); EXT=1.
  kSoftwareInterrupt,  // int n: gate DPL checked, EXT=0.
  kSoftwareException,  // int3, into: gate DPL checked, EXT=0.
};

struct GuestEvent {
  uint8_t vector = 0;
  std::optional<uint32_t> error_code;
  std::optional<uint32_t> fault_address;  // #PF: loaded into CR2 at delivery.
  EventSource source = EventSource::kException;
  // Software sources: the length of the int n / int3 / into instruction at
  // cpu().eip; the frame's return address is the instruction after it. Every
  // other event returns to cpu().eip itself.
  uint8_t instruction_length = 0;

  static GuestEvent exception(const GuestException& e) {
    return {e.vector, e.error_code, e.fault_address, EventSource::kException, 0};
  }
  static GuestEvent external_interrupt(uint8_t vector) {
    return {vector, std::nullopt, std::nullopt, EventSource::kExternalInterrupt, 0};
  }
  static GuestEvent software(uint8_t vector, EventSource source, uint8_t length) {
    return {vector, std::nullopt, std::nullopt, source, length};
  }

  bool is_software() const {
    return source == EventSource::kSoftwareInterrupt || source == EventSource::kSoftwareException;
  }
  // The EXT bit of error codes raised while delivering this event.
  uint32_t ext() const { return is_software() ? 0 : 1; }
};

// "#GP(0x10)", "#PF(0x2)", "int 0x80": for shutdown messages and logs.
std::string describe_event(uint8_t vector, std::optional<uint32_t> error_code);

}  // namespace bt86
