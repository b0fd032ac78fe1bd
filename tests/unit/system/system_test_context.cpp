#include "system_test_context.h"

#include <gtest/gtest.h>

#include <stdexcept>

#include "runtime/system/system_instructions.h"

namespace bt86::test {
namespace {

std::unique_ptr<Machine> make_machine(RecordingSerial& serial) {
  MachineParts parts;
  parts.ram_size = 32ull << 20;
  parts.serial = &serial;
  parts.clock = std::make_unique<ManualClock>();
  parts.wall_clock = std::make_unique<FixedWallClock>(0);
  return std::make_unique<Machine>(std::move(parts));
}

Segment system_segment(uint16_t selector, uint32_t base, uint32_t limit, uint8_t type) {
  Segment s;
  s.selector = selector;
  s.base = base;
  s.limit = limit;
  s.type = type;
  s.s = false;
  s.present = true;
  return s;
}

}  // namespace

Segment data_segment(uint16_t selector, uint32_t base, uint32_t limit, uint8_t dpl, bool writable) {
  Segment s = flat_segment(selector, writable ? 2 : 0, dpl);
  s.base = base;
  s.limit = limit;
  s.granularity = limit > 0xFFFFF;
  return s;
}

Segment code_segment(uint16_t selector, uint8_t dpl, bool conforming) {
  return flat_segment(selector, conforming ? 0xE : 0xA, dpl);
}

SystemTestContext::SystemTestContext()
    : machine_(make_machine(serial)),
      mmu_(machine_->memory(), {}),
      linear_(machine_->memory(), mmu_) {
  set_gdt(sel::kCode0, code_segment(sel::kCode0, 0));
  set_gdt(sel::kData0, data_segment(sel::kData0, 0, 0xFFFFFFFF, 0));
  set_gdt(sel::kCode3, code_segment(sel::kCode3, 3));
  set_gdt(sel::kData3, data_segment(sel::kData3, 0, 0xFFFFFFFF, 3));
  set_gdt(sel::kTssA, system_segment(sel::kTssA, layout::kTssA, 0x67, 9));
  set_gdt(sel::kTssB, system_segment(sel::kTssB, layout::kTssB, 0x67, 9));
  set_gdt(sel::kLdt, system_segment(sel::kLdt, layout::kLdt, 0x1F, 2));
  Segment np = data_segment(sel::kNotPresentData, 0, 0xFFFFFFFF, 0);
  np.present = false;
  set_gdt(sel::kNotPresentData, np);
  set_gdt(sel::kReadOnlyData, data_segment(sel::kReadOnlyData, 0, 0xFFFFFFFF, 0, false));
  set_gdt(sel::kSmallData, data_segment(sel::kSmallData, 0x20000, 0xFF, 0));
  set_gdt(sel::kConformingCode, code_segment(sel::kConformingCode, 0, true));
  set_gdt(sel::kData3Dpl3Code0, code_segment(sel::kData3Dpl3Code0, 3));
  Segment npc = code_segment(sel::kNotPresentCode, 0);
  npc.present = false;
  set_gdt(sel::kNotPresentCode, npc);
  // LDT entry 0: a DPL 3 data segment based at 0x30000.
  const uint64_t ldt0 = encode_segment_descriptor(data_segment(4, 0x30000, 0xFFFF, 3));
  ram().write_u32(layout::kLdt, static_cast<uint32_t>(ldt0));
  ram().write_u32(layout::kLdt + 4, static_cast<uint32_t>(ldt0 >> 32));
  // TSS A: ring-0 stack; TSS B: a full task at 0x200000.
  ram().write_u32(layout::kTssA + 4, layout::kStack0);
  ram().write_u32(layout::kTssA + 8, sel::kData0);
  enter_cpl0();
}

void SystemTestContext::set_gdt(uint16_t selector, const Segment& s) {
  set_gdt_raw(selector, encode_segment_descriptor(s));
}

void SystemTestContext::set_gdt_raw(uint16_t selector, uint64_t raw) {
  const uint32_t at = layout::kGdt + (selector & 0xFFF8);
  ram().write_u32(at, static_cast<uint32_t>(raw));
  ram().write_u32(at + 4, static_cast<uint32_t>(raw >> 32));
}

uint64_t SystemTestContext::gdt_raw(uint16_t selector) {
  const uint32_t at = layout::kGdt + (selector & 0xFFF8);
  return ram().read_u32(at) | (uint64_t{ram().read_u32(at + 4)} << 32);
}

void SystemTestContext::set_gate(uint8_t vector, uint8_t type, uint16_t selector, uint32_t offset,
                                 uint8_t dpl, bool present) {
  GateDescriptor g;
  g.selector = selector;
  g.offset = offset;
  g.type = type;
  g.dpl = dpl;
  g.present = present;
  const uint64_t raw = encode_gate_descriptor(g);
  ram().write_u32(layout::kIdt + vector * 8, static_cast<uint32_t>(raw));
  ram().write_u32(layout::kIdt + vector * 8 + 4, static_cast<uint32_t>(raw >> 32));
}

void SystemTestContext::enter_cpl0() {
  cpu_.cr0 = cr0::kPe | cr0::kEt;
  cpu_.gdtr = {layout::kGdt, 32 * 8 - 1};
  cpu_.idtr = {layout::kIdt, 256 * 8 - 1};
  cpu_.segment(SegReg::kCs) = code_segment(sel::kCode0, 0);
  cpu_.segment(SegReg::kCs).type |= 1;
  for (SegReg r : {SegReg::kSs, SegReg::kDs, SegReg::kEs, SegReg::kFs, SegReg::kGs}) {
    cpu_.segment(r) = data_segment(sel::kData0, 0, 0xFFFFFFFF, 0);
  }
  cpu_.tr = decode_segment_descriptor(gdt_raw(sel::kTssA), sel::kTssA);
  cpu_.tr.type = 11;
  Segment busy = cpu_.tr;
  set_gdt(sel::kTssA, busy);
  cpu_.ldtr = decode_segment_descriptor(gdt_raw(sel::kLdt), sel::kLdt);
  cpu_.reg(Gpr::kEsp) = 0x7800;
  cpu_.eip = 0x100000;
  cpu_.eflags = eflags::kFixed1 | eflags::kIf;
}

void SystemTestContext::enter_cpl3() {
  cpu_.segment(SegReg::kCs) = code_segment(sel::kCode3, 3);
  for (SegReg r : {SegReg::kSs, SegReg::kDs, SegReg::kEs, SegReg::kFs, SegReg::kGs}) {
    cpu_.segment(r) = data_segment(sel::kData3, 0, 0xFFFFFFFF, 3);
  }
  cpu_.reg(Gpr::kEsp) = layout::kStack3;
  cpu_.eip = 0x400000;
}

void SystemTestContext::enable_paging() {
  const uint32_t pt = layout::kPageDirectory + 0x1000;
  ram().write_u32(layout::kPageDirectory, pt | pte::kPresent | pte::kWritable | pte::kUser);
  for (uint32_t i = 0; i < 1024; ++i) {
    ram().write_u32(pt + i * 4, (i << 12) | pte::kPresent | pte::kWritable | pte::kUser);
  }
  cpu_.cr3 = layout::kPageDirectory;
  cpu_.cr0 |= cr0::kPg;
}

void SystemTestContext::map(uint32_t linear, uint32_t physical, uint32_t flags) {
  if (linear >= (4u << 20)) throw std::invalid_argument("map: only the first 4 MiB");
  ram().write_u32(layout::kPageDirectory + 0x1000 + (linear >> 12) * 4,
                  (physical & 0xFFFFF000u) | flags);
}

SystemOutcome execute(SystemTestContext& ctx, std::vector<uint8_t> bytes) {
  return execute_system_instruction(ctx, decode(std::move(bytes), ctx.cpu().eip));
}

DecodedInstruction decode(std::vector<uint8_t> bytes, uint32_t eip) {
  const GuestDecoder decoder;
  DecodedInstruction d;
  if (decoder.decode(eip, bytes, &d) != DecodeStatus::kOk) {
    ADD_FAILURE() << "undecodable test instruction";
  }
  return d;
}

}  // namespace bt86::test
