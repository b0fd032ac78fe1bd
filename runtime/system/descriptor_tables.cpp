#include "runtime/system/descriptor_tables.h"

#include "runtime/system/guest_access.h"
#include "runtime/system/guest_event.h"

namespace bt86 {

SystemOutcome read_descriptor(SystemContext& ctx, uint16_t selector, uint32_t ext,
                              DescriptorSlot* out, uint8_t fault_vector) {
  const CpuState& cpu = ctx.cpu();
  uint32_t base = cpu.gdtr.base;
  uint32_t limit = cpu.gdtr.limit;
  if (selector & 4) {
    if (cpu.ldtr.unusable || !cpu.ldtr.present) {
      return SystemOutcome::fault(fault_vector, selector_error(selector, ext));
    }
    base = cpu.ldtr.base;
    limit = cpu.ldtr.limit;
  }
  const uint32_t offset = selector & 0xFFF8u;
  if (offset + 7u > limit) return SystemOutcome::fault(fault_vector, selector_error(selector, ext));
  out->linear = base + offset;
  uint8_t bytes[8];
  SystemOutcome o = read_linear(ctx, out->linear, bytes, false);
  if (!o.continues()) return o;
  out->raw = 0;
  for (int i = 7; i >= 0; --i) out->raw = (out->raw << 8) | bytes[i];
  return o;
}

SystemOutcome mark_accessed(SystemContext& ctx, DescriptorSlot& slot) {
  const uint64_t accessed = uint64_t{descriptor_type::kAccessed} << 40;
  if (slot.raw & accessed) return SystemOutcome::ok();
  slot.raw |= accessed;
  return write_linear_value(ctx, slot.linear + 5, 1, static_cast<uint8_t>(slot.raw >> 40), false);
}

SystemOutcome set_tss_busy(SystemContext& ctx, DescriptorSlot& slot, bool busy) {
  // Busy is bit 1 of the type in both the 16- and the 32-bit TSS types.
  const uint64_t bit = uint64_t{2} << 40;
  slot.raw = busy ? (slot.raw | bit) : (slot.raw & ~bit);
  return write_linear_value(ctx, slot.linear + 5, 1, static_cast<uint8_t>(slot.raw >> 40), false);
}

SystemOutcome read_idt_gate(SystemContext& ctx, uint8_t vector, uint32_t ext, GateDescriptor* out) {
  const CpuState& cpu = ctx.cpu();
  const uint32_t offset = vector * 8u;
  if (offset + 7u > cpu.idtr.limit)
    return SystemOutcome::fault(vector::kGp, idt_error(vector, ext));
  uint8_t bytes[8];
  SystemOutcome o = read_linear(ctx, cpu.idtr.base + offset, bytes, false);
  if (!o.continues()) return o;
  uint64_t raw = 0;
  for (int i = 7; i >= 0; --i) raw = (raw << 8) | bytes[i];
  *out = decode_gate_descriptor(raw);
  return o;
}

SystemOutcome read_tss_stack(SystemContext& ctx, uint8_t dpl, uint32_t ext, uint16_t* ss,
                             uint32_t* esp) {
  const Segment& tr = ctx.cpu().tr;
  const bool tss32 = (tr.type & 8) != 0;
  const uint32_t esp_offset = tss32 ? 4u + dpl * 8u : 2u + dpl * 4u;
  const uint32_t ss_offset = tss32 ? esp_offset + 4 : esp_offset + 2;
  const int esp_size = tss32 ? 4 : 2;
  if (tr.unusable || ss_offset + 1 > tr.limit) {
    return SystemOutcome::fault(vector::kTs, selector_error(tr.selector, ext));
  }
  uint32_t ss_value = 0;
  SystemOutcome o = read_linear_value(ctx, tr.base + esp_offset, esp_size, esp, false);
  if (!o.continues()) return o;
  o = read_linear_value(ctx, tr.base + ss_offset, 2, &ss_value, false);
  *ss = static_cast<uint16_t>(ss_value);
  return o;
}

}  // namespace bt86
