// Reading the guest for the debugger, the same way under every backend:
// memory through the guest's page tables without side effects, and the
// architectural state and devices formatted for people.
//
// Nothing here changes the guest: the page walk is a probe (no accessed or
// dirty bits) and device state is read through const accessors, never
// through port reads that would pop a FIFO or acknowledge an interrupt.
//
//   GuestView view(machine);
//   std::vector<uint8_t> bytes(16);
//   if (view.read_linear(cpu, 0x100000, bytes)) ...
//   fmt::print("{}", format_registers(cpu, symbols));
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "monitor/cpu_state.h"
#include "monitor/debugger/symbol_table.h"
#include "monitor/machine.h"
#include "shadow/guest_page_walker.h"

namespace bt86 {

class GuestView {
 public:
  explicit GuestView(Machine& machine) : machine_(machine), walker_(machine.memory()) {}

  // linear -> physical in cpu's paging mode (identity with paging off).
  std::optional<uint32_t> physical_of(const CpuState& cpu, uint32_t linear) const;
  PageWalkResult walk(const CpuState& cpu, uint32_t linear) const;
  // False if any byte is unmapped or not RAM.
  bool read_linear(const CpuState& cpu, uint32_t linear, std::span<uint8_t> out) const;
  bool read_physical(uint32_t physical, std::span<uint8_t> out) const;
  // Writes through the page tables; reports the physical pieces written
  // through on_written (for DebugTarget::memory_written). False (nothing
  // written) if any byte is unmapped or not RAM.
  template <typename OnWritten>
  bool write_linear(const CpuState& cpu, uint32_t linear, std::span<const uint8_t> data,
                    OnWritten on_written);

 private:
  bool pieces(const CpuState& cpu, uint32_t linear, uint32_t length,
              std::vector<std::pair<uint32_t, uint32_t>>* out) const;

  Machine& machine_;
  GuestPageWalker walker_;
};

template <typename OnWritten>
bool GuestView::write_linear(const CpuState& cpu, uint32_t linear, std::span<const uint8_t> data,
                             OnWritten on_written) {
  std::vector<std::pair<uint32_t, uint32_t>> parts;
  if (!pieces(cpu, linear, static_cast<uint32_t>(data.size()), &parts)) return false;
  size_t done = 0;
  for (const auto& [physical, length] : parts) {
    machine_.memory().write(physical, data.subspan(done, length));
    on_written(physical, length);
    done += length;
  }
  return true;
}

// "ZF PF IF IOPL=0" style, set flags only.
std::string format_eflags(uint32_t eflags);
// GPRs, EIP (with symbol), EFLAGS, segments with hidden parts, CRs, tables.
std::string format_registers(const CpuState& cpu, const SymbolTable& symbols);
std::string format_segment(std::string_view name, const Segment& s);
// The GDT, IDT or LDT decoded entry by entry (non-present entries skipped).
enum class DescriptorTable { kGdt, kIdt, kLdt };
std::string format_descriptor_table(const GuestView& view, const CpuState& cpu,
                                    DescriptorTable table, const SymbolTable& symbols);
std::string format_devices(const Machine& machine);
std::string format_events(const CpuState& cpu, const Machine& machine);

}  // namespace bt86
