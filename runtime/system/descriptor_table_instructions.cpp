// Descriptor-table registers and descriptor queries (Vol. 2 LGDT/LIDT,
// SGDT/SIDT, LLDT/SLDT, LTR/STR, LAR, LSL, VERR, VERW, ARPL).
//
// Loads are CPL 0 only and notify descriptor_tables_changed(); stores work
// at any CPL (the model has no UMIP). LTR marks the TSS busy in memory. The
// queries never fault on a bad selector: they report through ZF, as the
// SDM says, and fault only on memory operands and descriptor-table pages.
#include "runtime/system/descriptor_tables.h"
#include "runtime/system/guest_event.h"
#include "runtime/system/instruction_operands.h"
#include "runtime/system/segment_loads.h"
#include "runtime/system/system_instructions.h"

namespace bt86 {
namespace {

DescriptorTableRegister& table_register(CpuState& cpu, ZydisMnemonic m) {
  return (m == ZYDIS_MNEMONIC_LGDT || m == ZYDIS_MNEMONIC_SGDT) ? cpu.gdtr : cpu.idtr;
}

// Writes a 16-bit selector to r/m16 (a 32-bit register gets it zero-extended).
SystemOutcome store_selector(SystemContext& ctx, const DecodedInstruction& insn,
                             uint16_t selector) {
  SystemOutcome o = write_operand(ctx, insn, insn.operands[0], 2, selector);
  if (!o.continues()) return o;
  return complete(ctx, insn);
}

SystemOutcome read_selector_operand(SystemContext& ctx, const DecodedInstruction& insn,
                                    const ZydisDecodedOperand& op, uint16_t* selector) {
  uint32_t value = 0;
  SystemOutcome o = read_operand(ctx, insn, op, 2, &value);
  *selector = static_cast<uint16_t>(value);
  return o;
}

void set_zf(CpuState& cpu, bool zf) {
  cpu.eflags = zf ? (cpu.eflags | eflags::kZf) : (cpu.eflags & ~eflags::kZf);
}

enum class Query { kLar, kLsl, kVerr, kVerw };

// Whether the descriptor is visible to the query at this CPL/RPL (Vol. 2
// LAR/LSL/VERR/VERW). Reads of the descriptor may still #PF.
SystemOutcome query_descriptor(SystemContext& ctx, uint16_t selector, Query query, bool* valid,
                               DescriptorSlot* slot) {
  *valid = false;
  if (is_null_selector(selector)) return SystemOutcome::ok();
  SystemOutcome o = read_descriptor(ctx, selector, 0, slot);
  if (o.kind == SystemOutcome::Kind::kException && o.exception.vector == vector::kGp) {
    return SystemOutcome::ok();  // Beyond the table limit: ZF=0, no fault.
  }
  if (!o.continues()) return o;
  const Segment d = decode_segment_descriptor(slot->raw, selector);
  const bool conforming_code = is_code(d) && (d.type & descriptor_type::kConforming);
  if (!d.s) {
    using namespace descriptor_type;
    const uint8_t t = d.type;
    const bool tss_or_ldt = t == kTss16Available || t == kTss16Busy || t == kLdt ||
                            t == kTss32Available || t == kTss32Busy;
    const bool gate = t == kCallGate16 || t == kTaskGate || t == kCallGate32;
    if (query == Query::kVerr || query == Query::kVerw) return o;
    if (!(tss_or_ldt || (query == Query::kLar && gate))) return o;
  } else if (query == Query::kVerr && !is_readable(d)) {
    return o;
  } else if (query == Query::kVerw && !is_writable_data(d)) {
    return o;
  }
  const uint8_t cpl = ctx.cpu().cpl();
  if (!conforming_code && (d.dpl < cpl || d.dpl < (selector & 3))) return o;
  *valid = true;
  return o;
}

SystemOutcome execute_query(SystemContext& ctx, const DecodedInstruction& insn, Query query) {
  const bool writes_register = query == Query::kLar || query == Query::kLsl;
  const ZydisDecodedOperand& source = insn.operands[writes_register ? 1 : 0];
  uint16_t selector = 0;
  SystemOutcome o = read_selector_operand(ctx, insn, source, &selector);
  if (!o.continues()) return o;
  bool valid = false;
  DescriptorSlot slot;
  o = query_descriptor(ctx, selector, query, &valid, &slot);
  if (!o.continues()) return o;
  CpuState& cpu = ctx.cpu();
  set_zf(cpu, valid);
  if (valid && query == Query::kLar) {
    const uint32_t rights = static_cast<uint32_t>(slot.raw >> 32) & 0x00F0FF00u;
    write_gpr(cpu, insn.operands[0].reg.value, rights);
  }
  if (valid && query == Query::kLsl) {
    write_gpr(cpu, insn.operands[0].reg.value, decode_segment_descriptor(slot.raw, selector).limit);
  }
  return complete(ctx, insn);
}

}  // namespace

SystemOutcome execute_load_table_register(SystemContext& ctx, const DecodedInstruction& insn) {
  CpuState& cpu = ctx.cpu();
  if (cpu.cpl() != 0) return SystemOutcome::fault(vector::kGp, 0);
  const ZydisDecodedOperand& mem = insn.operands[0];
  if (mem.type != ZYDIS_OPERAND_TYPE_MEMORY) return SystemOutcome::fault(vector::kUd);
  uint32_t limit = 0, base = 0;
  SystemOutcome o = read_memory_operand(ctx, insn, mem, 0, 2, &limit);
  if (o.continues()) o = read_memory_operand(ctx, insn, mem, 2, 4, &base);
  if (!o.continues()) return o;
  // A 16-bit operand size loads a 24-bit base.
  if (insn.insn.operand_width == 16) base &= 0x00FFFFFF;
  table_register(cpu, insn.mnemonic()) = {base, static_cast<uint16_t>(limit)};
  ctx.descriptor_tables_changed();
  return complete(ctx, insn);
}

SystemOutcome execute_store_table_register(SystemContext& ctx, const DecodedInstruction& insn) {
  const ZydisDecodedOperand& mem = insn.operands[0];
  if (mem.type != ZYDIS_OPERAND_TYPE_MEMORY) return SystemOutcome::fault(vector::kUd);
  const DescriptorTableRegister& r = table_register(ctx.cpu(), insn.mnemonic());
  SystemOutcome o = write_memory_operand(ctx, insn, mem, 0, 2, r.limit);
  if (o.continues()) o = write_memory_operand(ctx, insn, mem, 2, 4, r.base);
  if (!o.continues()) return o;
  return complete(ctx, insn);
}

SystemOutcome execute_lldt(SystemContext& ctx, const DecodedInstruction& insn) {
  CpuState& cpu = ctx.cpu();
  if (cpu.cpl() != 0) return SystemOutcome::fault(vector::kGp, 0);
  uint16_t selector = 0;
  SystemOutcome o = read_selector_operand(ctx, insn, insn.operands[0], &selector);
  if (!o.continues()) return o;
  Segment ldt = null_segment(selector);
  if (!is_null_selector(selector)) {
    const uint32_t error = selector_error(selector, 0);
    if (selector & 4) return SystemOutcome::fault(vector::kGp, error);
    DescriptorSlot slot;
    o = read_descriptor(ctx, selector, 0, &slot);
    if (!o.continues()) return o;
    ldt = decode_segment_descriptor(slot.raw, selector);
    if (ldt.s || ldt.type != descriptor_type::kLdt) return SystemOutcome::fault(vector::kGp, error);
    if (!ldt.present) return SystemOutcome::fault(vector::kNp, error);
  }
  cpu.ldtr = ldt;
  ctx.descriptor_tables_changed();
  return complete(ctx, insn);
}

SystemOutcome execute_ltr(SystemContext& ctx, const DecodedInstruction& insn) {
  CpuState& cpu = ctx.cpu();
  if (cpu.cpl() != 0) return SystemOutcome::fault(vector::kGp, 0);
  uint16_t selector = 0;
  SystemOutcome o = read_selector_operand(ctx, insn, insn.operands[0], &selector);
  if (!o.continues()) return o;
  if (is_null_selector(selector)) return SystemOutcome::fault(vector::kGp, 0);
  const uint32_t error = selector_error(selector, 0);
  if (selector & 4) return SystemOutcome::fault(vector::kGp, error);
  DescriptorSlot slot;
  o = read_descriptor(ctx, selector, 0, &slot);
  if (!o.continues()) return o;
  Segment tss = decode_segment_descriptor(slot.raw, selector);
  const bool available =
      tss.type == descriptor_type::kTss32Available || tss.type == descriptor_type::kTss16Available;
  if (tss.s || !available) return SystemOutcome::fault(vector::kGp, error);
  if (!tss.present) return SystemOutcome::fault(vector::kNp, error);
  o = set_tss_busy(ctx, slot, true);
  if (!o.continues()) return o;
  tss.type |= 2;
  cpu.tr = tss;
  ctx.descriptor_tables_changed();
  return complete(ctx, insn);
}

SystemOutcome execute_sldt(SystemContext& ctx, const DecodedInstruction& insn) {
  return store_selector(ctx, insn, ctx.cpu().ldtr.selector);
}

SystemOutcome execute_str(SystemContext& ctx, const DecodedInstruction& insn) {
  return store_selector(ctx, insn, ctx.cpu().tr.selector);
}

SystemOutcome execute_lar(SystemContext& ctx, const DecodedInstruction& insn) {
  return execute_query(ctx, insn, Query::kLar);
}
SystemOutcome execute_lsl(SystemContext& ctx, const DecodedInstruction& insn) {
  return execute_query(ctx, insn, Query::kLsl);
}
SystemOutcome execute_verr(SystemContext& ctx, const DecodedInstruction& insn) {
  return execute_query(ctx, insn, Query::kVerr);
}
SystemOutcome execute_verw(SystemContext& ctx, const DecodedInstruction& insn) {
  return execute_query(ctx, insn, Query::kVerw);
}

SystemOutcome execute_arpl(SystemContext& ctx, const DecodedInstruction& insn) {
  uint32_t dest = 0;
  SystemOutcome o = read_operand(ctx, insn, insn.operands[0], 2, &dest);
  if (!o.continues()) return o;
  const uint32_t source = read_gpr(ctx.cpu(), insn.operands[1].reg.value);
  const bool adjust = (dest & 3) < (source & 3);
  if (adjust) {
    o = write_operand(ctx, insn, insn.operands[0], 2, (dest & ~3u) | (source & 3));
    if (!o.continues()) return o;
  }
  set_zf(ctx.cpu(), adjust);
  return complete(ctx, insn);
}

}  // namespace bt86
