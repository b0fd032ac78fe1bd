#include "runtime/system/event_delivery.h"

#include <fmt/format.h>

#include "runtime/system/descriptor_tables.h"
#include "runtime/system/guest_access.h"
#include "runtime/system/segment_loads.h"
#include "runtime/system/task_switch.h"

namespace bt86 {
namespace {

enum class ExceptionClass { kBenign, kContributory, kPageFault, kDoubleFault };

ExceptionClass class_of(const GuestEvent& e) {
  if (e.source != EventSource::kException) return ExceptionClass::kBenign;
  switch (e.vector) {
    case vector::kDe:
    case vector::kTs:
    case vector::kNp:
    case vector::kSs:
    case vector::kGp:
      return ExceptionClass::kContributory;
    case vector::kPf:
      return ExceptionClass::kPageFault;
    case vector::kDf:
      return ExceptionClass::kDoubleFault;
    default:
      return ExceptionClass::kBenign;
  }
}

bool is_gate_type(uint8_t type) {
  using namespace descriptor_type;
  return type == kTaskGate || type == kInterruptGate16 || type == kTrapGate16 ||
         type == kInterruptGate32 || type == kTrapGate32;
}

SystemOutcome deliver_through_task_gate(SystemContext& ctx, const GateDescriptor& gate,
                                        const GuestEvent& event, uint32_t return_eip) {
  const uint32_t ext = event.ext();
  DescriptorSlot slot;
  SystemOutcome o =
      fetch_task_descriptor(ctx, gate.selector, TaskSwitchSource::kInterrupt, ext, &slot);
  if (!o.continues()) return o;
  o = switch_task(ctx, gate.selector, slot, TaskSwitchSource::kInterrupt, return_eip, ext);
  if (!o.continues() || !event.error_code) return o;
  CpuState& cpu = ctx.cpu();
  StackAccess stack(ctx, cpu.segment(SegReg::kSs), cpu.reg(Gpr::kEsp), cpu.cpl() == 3, ext);
  o = stack.push(*event.error_code, 4);
  if (o.continues()) cpu.reg(Gpr::kEsp) = stack.esp();
  return o;
}

// One delivery attempt; kException is an exception raised by the delivery
// itself, with cpu() unchanged (or, after a task switch, in the new task).
SystemOutcome deliver_once(SystemContext& ctx, const GuestEvent& event) {
  CpuState& cpu = ctx.cpu();
  if (!(cpu.cr0 & cr0::kPe)) {
    return SystemOutcome::shutdown(
        fmt::format("{} in real mode: bt86 delivers events in protected mode only",
                    describe_event(event.vector, event.error_code)));
  }
  if (cpu.eflags & eflags::kVm) {
    return SystemOutcome::shutdown(
        fmt::format("{} in virtual-8086 mode: bt86 does not emulate virtual-8086 mode",
                    describe_event(event.vector, event.error_code)));
  }
  const uint32_t ext = event.ext();
  GateDescriptor gate;
  SystemOutcome o = read_idt_gate(ctx, event.vector, ext, &gate);
  if (!o.continues()) return o;
  if (!is_gate_type(gate.type))
    return SystemOutcome::fault(vector::kGp, idt_error(event.vector, ext));
  const uint8_t cpl = cpu.cpl();
  if (event.is_software() && cpl > gate.dpl) {
    return SystemOutcome::fault(vector::kGp, idt_error(event.vector, 0));
  }
  if (!gate.present) return SystemOutcome::fault(vector::kNp, idt_error(event.vector, ext));
  const uint32_t return_eip = cpu.eip + (event.is_software() ? event.instruction_length : 0);
  if (gate.type == descriptor_type::kTaskGate) {
    return deliver_through_task_gate(ctx, gate, event, return_eip);
  }

  if (is_null_selector(gate.selector)) return SystemOutcome::fault(vector::kGp, ext);
  const uint32_t cs_error = selector_error(gate.selector, ext);
  DescriptorSlot cs_slot;
  o = read_descriptor(ctx, gate.selector, ext, &cs_slot);
  if (!o.continues()) return o;
  Segment cs = decode_segment_descriptor(cs_slot.raw, gate.selector);
  if (!is_code(cs) || cs.dpl > cpl) return SystemOutcome::fault(vector::kGp, cs_error);
  if (!cs.present) return SystemOutcome::fault(vector::kNp, cs_error);
  const bool gate32 = gate.type & 8;
  const int size = gate32 ? 4 : 2;
  const uint32_t target = gate32 ? gate.offset : (gate.offset & 0xFFFF);
  if (!within_limit(cs, target, 1)) return SystemOutcome::fault(vector::kGp, ext);
  const bool conforming = cs.type & descriptor_type::kConforming;
  const uint8_t new_cpl = conforming ? cpl : cs.dpl;

  const Segment old_ss = cpu.segment(SegReg::kSs);
  const uint32_t old_esp = cpu.reg(Gpr::kEsp);
  Segment new_ss = old_ss;
  uint32_t new_esp = old_esp;
  uint32_t stack_error = ext;
  const bool stack_switch = new_cpl < cpl;
  if (stack_switch) {
    uint16_t ss_selector = 0;
    o = read_tss_stack(ctx, new_cpl, ext, &ss_selector, &new_esp);
    if (!o.continues()) return o;
    o = validate_stack_segment(ctx, ss_selector, new_cpl, vector::kTs, ext, &new_ss);
    if (!o.continues()) return o;
    stack_error = selector_error(ss_selector, ext);
  }
  StackAccess stack(ctx, new_ss, new_esp, new_cpl == 3, stack_error);
  if (stack_switch) {
    if (!(o = stack.push(old_ss.selector, size)).continues()) return o;
    if (!(o = stack.push(old_esp, size)).continues()) return o;
  }
  const uint32_t frame[] = {cpu.eflags, cpu.segment(SegReg::kCs).selector, return_eip};
  for (uint32_t value : frame) {
    if (!(o = stack.push(value, size)).continues()) return o;
  }
  if (event.error_code && !(o = stack.push(*event.error_code, size)).continues()) return o;
  o = mark_accessed(ctx, cs_slot);
  if (!o.continues()) return o;

  cs.type |= descriptor_type::kAccessed;
  cs.selector = static_cast<uint16_t>((gate.selector & 0xFFFC) | new_cpl);
  cs.dpl = new_cpl;
  cpu.segment(SegReg::kCs) = cs;
  cpu.segment(SegReg::kSs) = new_ss;
  cpu.reg(Gpr::kEsp) = stack.esp();
  cpu.eip = target;
  cpu.eflags &= ~(eflags::kTf | eflags::kNt | eflags::kRf | eflags::kVm);
  const bool interrupt_gate = gate.type == descriptor_type::kInterruptGate32 ||
                              gate.type == descriptor_type::kInterruptGate16;
  if (interrupt_gate) cpu.eflags &= ~eflags::kIf;
  ctx.segments_changed();
  return SystemOutcome::ok();
}

}  // namespace

SystemOutcome deliver_event(SystemContext& ctx, const GuestEvent& event) {
  // Each round either delivers, shuts down, or escalates one class step
  // (benign -> contributory/#PF -> #DF -> shutdown) — except serial benign
  // deliveries, which the bound below cuts off.
  constexpr int kMaxNested = 8;
  GuestEvent current = event;
  std::string history = describe_event(event.vector, event.error_code);
  for (int round = 0; round < kMaxNested; ++round) {
    if (current.vector == vector::kPf && current.fault_address) {
      ctx.cpu().cr2 = *current.fault_address;
    }
    const SystemOutcome o = deliver_once(ctx, current);
    if (o.kind != SystemOutcome::Kind::kException) return o;
    const GuestEvent nested = GuestEvent::exception(o.exception);
    const ExceptionClass first = class_of(current);
    const ExceptionClass second = class_of(nested);
    const bool second_serious =
        second == ExceptionClass::kContributory || second == ExceptionClass::kPageFault;
    history += fmt::format(", then {}", describe_event(nested.vector, nested.error_code));
    if (first == ExceptionClass::kDoubleFault && second_serious) {
      return SystemOutcome::shutdown(fmt::format("triple fault: {}", history));
    }
    const bool double_fault =
        (first == ExceptionClass::kContributory && second == ExceptionClass::kContributory) ||
        (first == ExceptionClass::kPageFault && second_serious);
    if (double_fault) {
      current = GuestEvent::exception({vector::kDf, 0, std::nullopt});
      history += ", so #DF(0x0)";
    } else {
      current = nested;
    }
  }
  return SystemOutcome::shutdown(fmt::format("event delivery did not settle: {}", history));
}

std::string describe_event(uint8_t vec, std::optional<uint32_t> error_code) {
  static constexpr const char* kNames[] = {
      "#DE", "#DB", "NMI", "#BP", "#OF", "#BR",       "#UD", "#NM", "#DF", "#MF-overrun",
      "#TS", "#NP", "#SS", "#GP", "#PF", "vector 15", "#MF", "#AC", "#MC", "#XM"};
  std::string name = vec < std::size(kNames) ? kNames[vec] : fmt::format("vector {:#x}", vec);
  if (error_code) name += fmt::format("({:#x})", *error_code);
  return name;
}

}  // namespace bt86
