#include "runtime/system/task_switch.h"

#include <fmt/format.h>

#include <array>
#include <cstring>

#include "runtime/system/guest_access.h"
#include "runtime/system/guest_event.h"
#include "runtime/system/segment_loads.h"

namespace bt86 {
namespace {

// 32-bit TSS layout (Vol. 3A Figure 7-2).
namespace tss32 {
constexpr uint32_t kLink = 0x00;
constexpr uint32_t kCr3 = 0x1C;
constexpr uint32_t kEip = 0x20;
constexpr uint32_t kEflags = 0x24;
constexpr uint32_t kGprs = 0x28;
constexpr uint32_t kSegments = 0x48;  // ES, CS, SS, DS, FS, GS: 4 bytes each.
constexpr uint32_t kLdt = 0x60;
constexpr uint32_t kMinimumLimit = 0x67;
}  // namespace tss32

bool is_tss32(uint8_t type) {
  return type == descriptor_type::kTss32Available || type == descriptor_type::kTss32Busy;
}

uint32_t field(const std::array<uint8_t, 0x68>& image, uint32_t offset) {
  uint32_t v;
  std::memcpy(&v, image.data() + offset, 4);
  return v;
}

SystemOutcome load_task_ldt(SystemContext& ctx, uint16_t selector, uint32_t ext) {
  CpuState& cpu = ctx.cpu();
  if (is_null_selector(selector)) {
    cpu.ldtr = null_segment(selector);
    return SystemOutcome::ok();
  }
  const uint32_t error = selector_error(selector, ext);
  if (selector & 4) return SystemOutcome::fault(vector::kTs, error);
  DescriptorSlot slot;
  SystemOutcome o = read_descriptor(ctx, selector, ext, &slot, vector::kTs);
  if (!o.continues()) return o;
  const Segment ldt = decode_segment_descriptor(slot.raw, selector);
  if (ldt.s || ldt.type != descriptor_type::kLdt || !ldt.present) {
    return SystemOutcome::fault(vector::kTs, error);
  }
  cpu.ldtr = ldt;
  return o;
}

SystemOutcome load_task_code_segment(SystemContext& ctx, uint16_t selector, uint32_t ext) {
  const uint32_t error = selector_error(selector, ext);
  if (is_null_selector(selector)) return SystemOutcome::fault(vector::kTs, error);
  DescriptorSlot slot;
  SystemOutcome o = read_descriptor(ctx, selector, ext, &slot, vector::kTs);
  if (!o.continues()) return o;
  Segment cs = decode_segment_descriptor(slot.raw, selector);
  const uint8_t rpl = selector & 3;
  const bool conforming = cs.type & descriptor_type::kConforming;
  if (!is_code(cs) || (conforming ? cs.dpl > rpl : cs.dpl != rpl)) {
    return SystemOutcome::fault(vector::kTs, error);
  }
  if (!cs.present) return SystemOutcome::fault(vector::kNp, error);
  o = mark_accessed(ctx, slot);
  if (!o.continues()) return o;
  cs.type |= descriptor_type::kAccessed;
  cs.dpl = rpl;
  ctx.cpu().segment(SegReg::kCs) = cs;
  return o;
}

SystemOutcome load_task_data_segment(SystemContext& ctx, SegReg reg, uint16_t selector,
                                     uint32_t ext) {
  CpuState& cpu = ctx.cpu();
  if (is_null_selector(selector)) {
    cpu.segment(reg) = null_segment(selector);
    return SystemOutcome::ok();
  }
  const uint32_t error = selector_error(selector, ext);
  DescriptorSlot slot;
  SystemOutcome o = read_descriptor(ctx, selector, ext, &slot, vector::kTs);
  if (!o.continues()) return o;
  Segment seg = decode_segment_descriptor(slot.raw, selector);
  const bool conforming = is_code(seg) && (seg.type & descriptor_type::kConforming);
  if (!is_readable(seg) || (!conforming && ((selector & 3) > seg.dpl || cpu.cpl() > seg.dpl))) {
    return SystemOutcome::fault(vector::kTs, error);
  }
  if (!seg.present) return SystemOutcome::fault(vector::kNp, error);
  o = mark_accessed(ctx, slot);
  if (!o.continues()) return o;
  seg.type |= descriptor_type::kAccessed;
  cpu.segment(reg) = seg;
  return o;
}

}  // namespace

SystemOutcome fetch_task_descriptor(SystemContext& ctx, uint16_t selector, TaskSwitchSource source,
                                    uint32_t ext, DescriptorSlot* slot) {
  const uint8_t type_vector = source == TaskSwitchSource::kIret ? vector::kTs : vector::kGp;
  const uint32_t error = selector_error(selector, ext);
  if ((selector & 4) || is_null_selector(selector)) return SystemOutcome::fault(type_vector, error);
  SystemOutcome o = read_descriptor(ctx, selector, ext, slot, type_vector);
  if (!o.continues()) return o;
  const Segment tss = decode_segment_descriptor(slot->raw, selector);
  const bool busy =
      tss.type == descriptor_type::kTss16Busy || tss.type == descriptor_type::kTss32Busy;
  const bool want_busy = source == TaskSwitchSource::kIret;
  if (tss.s || !is_tss_type(tss.type) || busy != want_busy) {
    return SystemOutcome::fault(type_vector, error);
  }
  if (!tss.present) return SystemOutcome::fault(vector::kNp, error);
  return o;
}

SystemOutcome switch_task(SystemContext& ctx, uint16_t selector, DescriptorSlot& slot,
                          TaskSwitchSource source, uint32_t return_eip, uint32_t ext) {
  CpuState& cpu = ctx.cpu();
  const Segment new_tss = decode_segment_descriptor(slot.raw, selector);
  if (!is_tss32(new_tss.type) || !is_tss32(cpu.tr.type) || cpu.tr.unusable) {
    return SystemOutcome::shutdown(
        fmt::format("task switch from TSS {:#x} to TSS {:#x}: only 32-bit TSSs are supported",
                    cpu.tr.selector, selector));
  }
  if (new_tss.limit < tss32::kMinimumLimit) {
    return SystemOutcome::fault(vector::kTs, selector_error(selector, ext));
  }
  if (cpu.tr.limit < tss32::kLdt - 1) {
    return SystemOutcome::fault(vector::kTs, selector_error(cpu.tr.selector, ext));
  }
  std::array<uint8_t, 0x68> image{};
  SystemOutcome o = read_linear(ctx, new_tss.base, image, false);
  if (!o.continues()) return o;
  if (field(image, tss32::kEflags) & eflags::kVm) {
    return SystemOutcome::shutdown(fmt::format(
        "task switch to TSS {:#x} enters virtual-8086 mode: bt86 does not emulate it", selector));
  }

  // Save the outgoing task: EIP, EFLAGS, GPRs and selectors.
  uint32_t saved[16];
  saved[0] = return_eip;
  saved[1] = cpu.eflags;
  if (source == TaskSwitchSource::kIret) saved[1] &= ~eflags::kNt;
  for (int i = 0; i < kNumGprs; ++i) saved[2 + i] = cpu.gpr[i];
  for (int i = 0; i < kNumSegRegs; ++i) saved[10 + i] = cpu.seg[i].selector;
  o = write_linear(ctx, cpu.tr.base + tss32::kEip,
                   std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(saved), sizeof saved),
                   false);
  if (!o.continues()) return o;
  if (source == TaskSwitchSource::kJump || source == TaskSwitchSource::kIret) {
    DescriptorSlot old_slot;
    o = read_descriptor(ctx, cpu.tr.selector, ext, &old_slot, vector::kTs);
    if (!o.continues()) return o;
    o = set_tss_busy(ctx, old_slot, false);
    if (!o.continues()) return o;
  }
  uint32_t new_eflags = field(image, tss32::kEflags) | eflags::kFixed1;
  if (source == TaskSwitchSource::kCall || source == TaskSwitchSource::kInterrupt) {
    o = write_linear_value(ctx, new_tss.base + tss32::kLink, 2, cpu.tr.selector, false);
    if (!o.continues()) return o;
    new_eflags |= eflags::kNt;
  }
  if (source != TaskSwitchSource::kIret) {
    o = set_tss_busy(ctx, slot, true);
    if (!o.continues()) return o;
  }

  // Commit point: from here on faults belong to the new task.
  cpu.tr = decode_segment_descriptor(slot.raw, selector);
  cpu.cr0 |= cr0::kTs;
  if (cpu.cr0 & cr0::kPg) {
    cpu.cr3 = field(image, tss32::kCr3);
    ctx.paging_changed();
  }
  cpu.eflags = new_eflags;
  cpu.eip = field(image, tss32::kEip);
  for (int i = 0; i < kNumGprs; ++i) cpu.gpr[i] = field(image, tss32::kGprs + 4 * i);
  uint16_t selectors[kNumSegRegs];
  for (int i = 0; i < kNumSegRegs; ++i) {
    selectors[i] = static_cast<uint16_t>(field(image, tss32::kSegments + 4 * i));
    cpu.seg[i] = null_segment(selectors[i]);
  }
  // CS.dpl carries the CPL: the new task runs at its CS RPL.
  cpu.segment(SegReg::kCs).dpl = selectors[static_cast<int>(SegReg::kCs)] & 3;
  const uint16_t ldt = static_cast<uint16_t>(field(image, tss32::kLdt));

  o = load_task_ldt(ctx, ldt, ext);
  if (o.continues()) o = load_task_code_segment(ctx, selectors[static_cast<int>(SegReg::kCs)], ext);
  if (o.continues()) {
    Segment ss;
    o = validate_stack_segment(ctx, selectors[static_cast<int>(SegReg::kSs)], cpu.cpl(),
                               vector::kTs, ext, &ss);
    if (o.continues()) cpu.segment(SegReg::kSs) = ss;
  }
  for (SegReg r : {SegReg::kEs, SegReg::kDs, SegReg::kFs, SegReg::kGs}) {
    if (o.continues()) o = load_task_data_segment(ctx, r, selectors[static_cast<int>(r)], ext);
  }
  if (o.continues() && !within_limit(cpu.segment(SegReg::kCs), cpu.eip, 1)) {
    o = SystemOutcome::fault(vector::kGp, 0);
  }
  ctx.descriptor_tables_changed();
  ctx.segments_changed();
  return o;
}

SystemOutcome return_from_nested_task(SystemContext& ctx, uint32_t return_eip) {
  CpuState& cpu = ctx.cpu();
  uint32_t link = 0;
  SystemOutcome o = read_linear_value(ctx, cpu.tr.base + tss32::kLink, 2, &link, false);
  if (!o.continues()) return o;
  const uint16_t selector = static_cast<uint16_t>(link);
  DescriptorSlot slot;
  o = fetch_task_descriptor(ctx, selector, TaskSwitchSource::kIret, 0, &slot);
  if (!o.continues()) return o;
  return switch_task(ctx, selector, slot, TaskSwitchSource::kIret, return_eip, 0);
}

}  // namespace bt86
