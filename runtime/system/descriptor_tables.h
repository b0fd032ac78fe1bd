// Reading and updating the guest's descriptor tables (GDT, LDT, IDT) and the
// current TSS the way the CPU itself does (Vol. 3A 3.4-3.5, 6.10-6.11, 7.2).
//
// Every access is an implicit supervisor access through linear_memory(), so
// it walks the guest page tables, may #PF, and goes through the shadow
// bookkeeping: descriptor-table pages are usually traced, and the CPU's own
// stores (accessed bit, TSS busy bit, the TSS state save) are reported like
// any other store to traced memory.
//
// Selector error codes are the selector with RPL replaced by the EXT bit
// (bit 0); IDT error codes are vector*8 + 2 (IDT bit) + EXT.
#pragma once

#include <cstdint>

#include "runtime/system/system_context.h"
#include "shadow/descriptor.h"

namespace bt86 {

// A descriptor and where it lives (for the accessed and busy bits).
struct DescriptorSlot {
  uint32_t linear = 0;
  uint64_t raw = 0;
};

inline uint32_t selector_error(uint16_t selector, uint32_t ext) {
  return (selector & 0xFFFCu) | ext;
}
inline uint32_t idt_error(uint8_t vector, uint32_t ext) {
  return vector * 8u + 2u + ext;
}
inline bool is_null_selector(uint16_t selector) {
  return (selector & 0xFFFC) == 0;
}

// Reads the descriptor a non-null selector names (TI picks GDT or LDT). A
// selector beyond the table limit, or TI=1 with no usable LDT, raises
// fault_vector(selector_error(selector, ext)).
SystemOutcome read_descriptor(SystemContext& ctx, uint16_t selector, uint32_t ext,
                              DescriptorSlot* out, uint8_t fault_vector = vector::kGp);

// Sets the accessed bit of a code/data descriptor in memory if it is clear.
SystemOutcome mark_accessed(SystemContext& ctx, DescriptorSlot& slot);
// Sets or clears the busy bit of a TSS descriptor in memory.
SystemOutcome set_tss_busy(SystemContext& ctx, DescriptorSlot& slot, bool busy);

// The IDT gate for vector; #GP(vector*8+2+ext) beyond the IDT limit.
SystemOutcome read_idt_gate(SystemContext& ctx, uint8_t vector, uint32_t ext, GateDescriptor* out);

// The inner-level stack (SSn:ESPn) in the current TSS, 32- or 16-bit TSS;
// #TS(TR selector + ext) if the TSS is too short to hold it.
SystemOutcome read_tss_stack(SystemContext& ctx, uint8_t dpl, uint32_t ext, uint16_t* ss,
                             uint32_t* esp);

inline bool is_tss_type(uint8_t type) {
  return type == descriptor_type::kTss16Available || type == descriptor_type::kTss16Busy ||
         type == descriptor_type::kTss32Available || type == descriptor_type::kTss32Busy;
}

}  // namespace bt86
