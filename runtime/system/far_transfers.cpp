// Far control transfers in protected mode (Vol. 2 JMP, CALL, RET, IRET;
// Vol. 3A 5.8): direct ptr16:32 and indirect m16:32 jmp/call to a code
// segment, through a call gate (jmp: same level; call: same or inner level
// with the parameter copy), or to a task (TSS or task gate); far ret and
// iret to the same or an outer level; iret with NT=1 as a task return.
//
// Every check runs before any register changes; stack stores of a far call
// may remain below ESP when a later check faults, as on hardware.
// Returning with VM=1 in the popped EFLAGS (to virtual-8086 mode) is a
// kShutdown: bt86 does not emulate virtual-8086 mode.
#include <fmt/format.h>

#include "runtime/system/descriptor_tables.h"
#include "runtime/system/guest_event.h"
#include "runtime/system/instruction_operands.h"
#include "runtime/system/segment_loads.h"
#include "runtime/system/system_instructions.h"
#include "runtime/system/task_switch.h"

namespace bt86 {
namespace {

struct FarPointer {
  uint16_t selector = 0;
  uint32_t offset = 0;
};

SystemOutcome read_far_pointer(SystemContext& ctx, const DecodedInstruction& insn,
                               FarPointer* out) {
  const ZydisDecodedOperand& op = insn.operands[0];
  if (op.type == ZYDIS_OPERAND_TYPE_POINTER) {
    out->selector = op.ptr.segment;
    out->offset = op.ptr.offset;
    return SystemOutcome::ok();
  }
  if (op.type != ZYDIS_OPERAND_TYPE_MEMORY) return SystemOutcome::fault(vector::kUd);
  const int size = insn.insn.operand_width / 8;
  uint32_t selector = 0;
  SystemOutcome o = read_memory_operand(ctx, insn, op, 0, size, &out->offset);
  if (o.continues()) o = read_memory_operand(ctx, insn, op, size, 2, &selector);
  out->selector = static_cast<uint16_t>(selector);
  return o;
}

void commit_code_segment(SystemContext& ctx, const Segment& cs, uint32_t eip) {
  CpuState& cpu = ctx.cpu();
  cpu.segment(SegReg::kCs) = cs;
  cpu.eip = eip;
}

bool is_call_gate(uint8_t type) {
  return type == descriptor_type::kCallGate16 || type == descriptor_type::kCallGate32;
}

// Far jmp/call to a TSS or through a task gate.
SystemOutcome transfer_to_task(SystemContext& ctx, const DecodedInstruction& insn,
                               uint16_t selector, const Segment& descriptor, bool call) {
  const uint8_t cpl = ctx.cpu().cpl();
  const uint32_t error = selector_error(selector, 0);
  if (descriptor.dpl < cpl || descriptor.dpl < (selector & 3)) {
    return SystemOutcome::fault(vector::kGp, error);
  }
  if (!descriptor.present) return SystemOutcome::fault(vector::kNp, error);
  uint16_t tss_selector = selector;
  if (descriptor.type == descriptor_type::kTaskGate) {
    DescriptorSlot gate_slot;
    SystemOutcome o = read_descriptor(ctx, selector, 0, &gate_slot);
    if (!o.continues()) return o;
    tss_selector = decode_gate_descriptor(gate_slot.raw).selector;
  }
  const TaskSwitchSource source = call ? TaskSwitchSource::kCall : TaskSwitchSource::kJump;
  DescriptorSlot slot;
  SystemOutcome o = fetch_task_descriptor(ctx, tss_selector, source, 0, &slot);
  if (!o.continues()) return o;
  return switch_task(ctx, tss_selector, slot, source, insn.next_eip(), 0);
}

// Far jmp/call through a call gate (Vol. 3A 5.8.4-5.8.5).
SystemOutcome transfer_through_call_gate(SystemContext& ctx, const DecodedInstruction& insn,
                                         uint16_t gate_selector, uint64_t gate_raw, bool call) {
  CpuState& cpu = ctx.cpu();
  const uint8_t cpl = cpu.cpl();
  const GateDescriptor gate = decode_gate_descriptor(gate_raw);
  const uint32_t gate_error = selector_error(gate_selector, 0);
  if (gate.dpl < cpl || gate.dpl < (gate_selector & 3)) {
    return SystemOutcome::fault(vector::kGp, gate_error);
  }
  if (!gate.present) return SystemOutcome::fault(vector::kNp, gate_error);
  if (is_null_selector(gate.selector)) return SystemOutcome::fault(vector::kGp, 0);
  const uint32_t error = selector_error(gate.selector, 0);
  DescriptorSlot cs_slot;
  SystemOutcome o = read_descriptor(ctx, gate.selector, 0, &cs_slot);
  if (!o.continues()) return o;
  Segment cs = decode_segment_descriptor(cs_slot.raw, gate.selector);
  const bool conforming = is_code(cs) && (cs.type & descriptor_type::kConforming);
  if (!is_code(cs) || cs.dpl > cpl || (!call && !conforming && cs.dpl != cpl)) {
    return SystemOutcome::fault(vector::kGp, error);
  }
  if (!cs.present) return SystemOutcome::fault(vector::kNp, error);
  const bool gate32 = gate.type == descriptor_type::kCallGate32;
  const int size = gate32 ? 4 : 2;
  const uint32_t target = gate32 ? gate.offset : (gate.offset & 0xFFFF);
  if (!within_limit(cs, target, 1)) return SystemOutcome::fault(vector::kGp, 0);
  const uint8_t new_cpl = conforming ? cpl : cs.dpl;

  const Segment old_ss = cpu.segment(SegReg::kSs);
  const uint32_t old_esp = cpu.reg(Gpr::kEsp);
  Segment new_ss = old_ss;
  uint32_t new_esp = old_esp;
  uint32_t stack_error = 0;
  const bool stack_switch = call && new_cpl < cpl;
  if (stack_switch) {
    uint16_t ss_selector = 0;
    o = read_tss_stack(ctx, new_cpl, 0, &ss_selector, &new_esp);
    if (!o.continues()) return o;
    o = validate_stack_segment(ctx, ss_selector, new_cpl, vector::kTs, 0, &new_ss);
    if (!o.continues()) return o;
    stack_error = selector_error(ss_selector, 0);
  }
  StackAccess stack(ctx, new_ss, new_esp, new_cpl == 3, stack_error);
  if (stack_switch) {
    // The parameters are read from the caller's stack at its privilege.
    uint32_t params[32];
    StackAccess caller(ctx, old_ss, old_esp, cpl == 3, 0);
    for (int i = 0; i < gate.parameter_count; ++i) {
      if (!(o = caller.pop(size, &params[i])).continues()) return o;
    }
    if (!(o = stack.push(old_ss.selector, size)).continues()) return o;
    if (!(o = stack.push(old_esp, size)).continues()) return o;
    for (int i = gate.parameter_count - 1; i >= 0; --i) {
      if (!(o = stack.push(params[i], size)).continues()) return o;
    }
  }
  if (call) {
    if (!(o = stack.push(cpu.segment(SegReg::kCs).selector, size)).continues()) return o;
    if (!(o = stack.push(insn.next_eip(), size)).continues()) return o;
  }
  o = mark_accessed(ctx, cs_slot);
  if (!o.continues()) return o;
  cs.type |= descriptor_type::kAccessed;
  cs.selector = static_cast<uint16_t>((gate.selector & 0xFFFC) | new_cpl);
  cs.dpl = new_cpl;
  cpu.segment(SegReg::kSs) = new_ss;
  cpu.reg(Gpr::kEsp) = stack.esp();
  commit_code_segment(ctx, cs, target);
  ctx.segments_changed();
  return SystemOutcome::ok();
}

SystemOutcome far_jump_or_call(SystemContext& ctx, const DecodedInstruction& insn, bool call) {
  FarPointer target;
  SystemOutcome o = read_far_pointer(ctx, insn, &target);
  if (!o.continues()) return o;
  if (is_null_selector(target.selector)) return SystemOutcome::fault(vector::kGp, 0);
  DescriptorSlot slot;
  o = read_descriptor(ctx, target.selector, 0, &slot);
  if (!o.continues()) return o;
  const Segment descriptor = decode_segment_descriptor(slot.raw, target.selector);
  if (!descriptor.s) {
    if (is_call_gate(descriptor.type)) {
      return transfer_through_call_gate(ctx, insn, target.selector, slot.raw, call);
    }
    if (descriptor.type == descriptor_type::kTaskGate ||
        descriptor.type == descriptor_type::kTss32Available ||
        descriptor.type == descriptor_type::kTss16Available) {
      return transfer_to_task(ctx, insn, target.selector, descriptor, call);
    }
    return SystemOutcome::fault(vector::kGp, selector_error(target.selector, 0));
  }
  Segment cs;
  o = validate_far_code_segment(ctx, target.selector, &cs);
  if (!o.continues()) return o;
  const int size = insn.insn.operand_width / 8;
  const uint32_t eip = size == 2 ? (target.offset & 0xFFFF) : target.offset;
  if (!within_limit(cs, eip, 1)) return SystemOutcome::fault(vector::kGp, 0);
  CpuState& cpu = ctx.cpu();
  if (call) {
    StackAccess stack = StackAccess::current(ctx);
    if (!(o = stack.push(cpu.segment(SegReg::kCs).selector, size)).continues()) return o;
    if (!(o = stack.push(insn.next_eip(), size)).continues()) return o;
    cpu.reg(Gpr::kEsp) = stack.esp();
  }
  commit_code_segment(ctx, cs, eip);
  ctx.segments_changed();
  return SystemOutcome::ok();
}

// The EFLAGS bits iret may change at the current CPL and IOPL.
uint32_t iret_writable_flags(const CpuState& cpu, int size) {
  constexpr uint32_t kVif = 1u << 19, kVip = 1u << 20;
  uint32_t writable = eflags::kArith | eflags::kTf | eflags::kDf | eflags::kNt | eflags::kRf |
                      eflags::kAc | eflags::kId;
  const uint8_t cpl = cpu.cpl();
  const uint8_t iopl = (cpu.eflags & eflags::kIoplMask) >> 12;
  if (cpl == 0) writable |= eflags::kIoplMask | eflags::kIf | kVif | kVip;
  if (cpl != 0 && cpl <= iopl) writable |= eflags::kIf;
  return size == 2 ? (writable & 0xFFFF) : writable;
}

// Far ret and iret once EIP, CS (and for iret EFLAGS) are popped: the same
// or an outer privilege level. release: ret's imm16, before and after the
// outer stack pointer is popped.
SystemOutcome far_return(SystemContext& ctx, StackAccess& stack, int size, uint16_t selector,
                         uint32_t eip, uint32_t release, const uint32_t* new_eflags) {
  CpuState& cpu = ctx.cpu();
  Segment cs;
  SystemOutcome o = validate_return_code_segment(ctx, selector, &cs);
  if (!o.continues()) return o;
  const uint8_t new_cpl = selector & 3;
  stack.release(release);
  const bool outer = new_cpl > cpu.cpl();
  Segment ss = cpu.segment(SegReg::kSs);
  uint32_t esp = stack.esp();
  if (outer) {
    uint32_t ss_selector = 0;
    if (!(o = stack.pop(size, &esp)).continues()) return o;
    if (!(o = stack.pop(size, &ss_selector)).continues()) return o;
    o = validate_stack_segment(ctx, static_cast<uint16_t>(ss_selector), new_cpl, vector::kGp, 0,
                               &ss);
    if (!o.continues()) return o;
    esp = with_stack_offset(ss, esp, esp + release);
  }
  if (!within_limit(cs, eip, 1)) return SystemOutcome::fault(vector::kGp, 0);
  if (new_eflags) {
    const uint32_t writable = iret_writable_flags(cpu, size);
    cpu.eflags = (cpu.eflags & ~writable) | (*new_eflags & writable) | eflags::kFixed1;
  }
  commit_code_segment(ctx, cs, eip);
  cpu.segment(SegReg::kSs) = ss;
  cpu.reg(Gpr::kEsp) = esp;
  if (outer) null_inaccessible_data_segments(cpu);
  ctx.segments_changed();
  return SystemOutcome::ok();
}

}  // namespace

SystemOutcome execute_far_jmp(SystemContext& ctx, const DecodedInstruction& insn) {
  return far_jump_or_call(ctx, insn, false);
}

SystemOutcome execute_far_call(SystemContext& ctx, const DecodedInstruction& insn) {
  return far_jump_or_call(ctx, insn, true);
}

SystemOutcome execute_far_ret(SystemContext& ctx, const DecodedInstruction& insn) {
  const int size = insn.insn.operand_width / 8;
  const uint32_t release = insn.operands[0].type == ZYDIS_OPERAND_TYPE_IMMEDIATE
                               ? insn.operands[0].imm.value.u & 0xFFFF
                               : 0;
  StackAccess stack = StackAccess::current(ctx);
  uint32_t eip = 0, selector = 0;
  SystemOutcome o = stack.pop(size, &eip);
  if (o.continues()) o = stack.pop(size, &selector);
  if (!o.continues()) return o;
  return far_return(ctx, stack, size, static_cast<uint16_t>(selector), eip, release, nullptr);
}

SystemOutcome execute_iret(SystemContext& ctx, const DecodedInstruction& insn) {
  CpuState& cpu = ctx.cpu();
  if (cpu.eflags & eflags::kNt) return return_from_nested_task(ctx, insn.next_eip());
  const int size = insn.insn.operand_width / 8;
  StackAccess stack = StackAccess::current(ctx);
  uint32_t eip = 0, selector = 0, flags = 0;
  SystemOutcome o = stack.pop(size, &eip);
  if (o.continues()) o = stack.pop(size, &selector);
  if (o.continues()) o = stack.pop(size, &flags);
  if (!o.continues()) return o;
  if (size == 2) flags = (cpu.eflags & 0xFFFF0000u) | flags;
  if ((flags & eflags::kVm) && cpu.cpl() == 0) {
    return SystemOutcome::shutdown(fmt::format(
        "iret at {:#x} to virtual-8086 mode: bt86 does not emulate virtual-8086 mode", cpu.eip));
  }
  return far_return(ctx, stack, size, static_cast<uint16_t>(selector), eip, 0, &flags);
}

}  // namespace bt86
