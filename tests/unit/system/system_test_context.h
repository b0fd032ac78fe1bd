// A SystemContext over a real Machine (guest RAM, port bus, CPUID model), a
// ShadowMmu and GuestLinearMemory, recording every notification, plus the
// guest tables the system tests share: a GDT, an IDT, two TSSs and an LDT in
// low memory, paging off unless a test turns it on. Code and data
// descriptors start with the accessed bit clear, so loads must set it.
//
// Layout (physical == linear while paging is off):
//   0x1000 GDT (32 entries)   0x2000 IDT (256 gates)   0x3000 TSS A   0x3200 TSS B
//   0x3400 LDT (4 entries)    0x8000 ring-0 stack top (TSS A esp0)
//   0x6000 ring-3 stack top   0x7000 TSS B stack top   0x10000 page directory
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "monitor/machine.h"
#include "runtime/system/system_context.h"
#include "shadow/descriptor.h"
#include "shadow/shadow_mmu.h"
#include "translator/guest_decoder.h"

namespace bt86::test {

namespace sel {
inline constexpr uint16_t kCode0 = 0x08;
inline constexpr uint16_t kData0 = 0x10;
inline constexpr uint16_t kCode3 = 0x1B;
inline constexpr uint16_t kData3 = 0x23;
inline constexpr uint16_t kTssA = 0x28;
inline constexpr uint16_t kTssB = 0x30;
inline constexpr uint16_t kLdt = 0x38;
inline constexpr uint16_t kNotPresentData = 0x40;
inline constexpr uint16_t kReadOnlyData = 0x48;
inline constexpr uint16_t kSmallData = 0x50;  // Base 0x20000, limit 0xFF.
inline constexpr uint16_t kConformingCode = 0x58;
inline constexpr uint16_t kData3Dpl3Code0 = 0x60;  // DPL 3 code, for mixed tests.
inline constexpr uint16_t kNotPresentCode = 0x68;
inline constexpr uint16_t kLdtData = 0x07;  // LDT entry 0 (TI=1), RPL 3.
}  // namespace sel

namespace layout {
inline constexpr uint32_t kGdt = 0x1000;
inline constexpr uint32_t kIdt = 0x2000;
inline constexpr uint32_t kTssA = 0x3000;
inline constexpr uint32_t kTssB = 0x3200;
inline constexpr uint32_t kLdt = 0x3400;
inline constexpr uint32_t kStack0 = 0x8000;
inline constexpr uint32_t kStack3 = 0x6000;
inline constexpr uint32_t kStackB = 0x7000;
inline constexpr uint32_t kPageDirectory = 0x10000;
}  // namespace layout

class RecordingSerial final : public SerialOutput {
 public:
  void write(std::span<const uint8_t> bytes) override { text.append(bytes.begin(), bytes.end()); }
  std::string text;
};

class SystemTestContext final : public SystemContext {
 public:
  SystemTestContext();

  CpuState& cpu() override { return cpu_; }
  GuestLinearMemory& linear_memory() override { return linear_; }
  Machine& machine() override { return *machine_; }
  void paging_changed() override { ++paging_changes; }
  void invalidate_page(uint32_t linear) override { invalidated_pages.push_back(linear); }
  void descriptor_tables_changed() override { ++descriptor_table_changes; }
  void segments_changed() override { ++segment_changes; }
  void traced_memory_written(uint32_t linear, uint32_t, TraceKinds) override {
    traced_writes.push_back(linear);
  }
  uint64_t read_tsc() override { return tsc; }
  void write_tsc(uint64_t value) override { tsc = value; }

  GuestMemory& ram() { return machine_->memory(); }
  ShadowMmu& mmu() { return mmu_; }

  void set_gdt(uint16_t selector, const Segment& s);
  void set_gdt_raw(uint16_t selector, uint64_t raw);
  uint64_t gdt_raw(uint16_t selector);
  void set_gate(uint8_t vector, uint8_t type, uint16_t selector, uint32_t offset, uint8_t dpl,
                bool present = true);
  // Protected mode, paging off, CPL 0 flat segments, TR = TSS A, EIP 0x100000.
  void enter_cpl0();
  // CPL 3 with the user flat segments and ESP at the ring-3 stack.
  void enter_cpl3();
  // Identity-maps the first 4 MiB (4 KiB pages, U/S and R/W set) and turns
  // paging on; map() changes single pages after that.
  void enable_paging();
  void map(uint32_t linear, uint32_t physical, uint32_t flags);

  // The 32-bit little-endian value at a linear (== physical here) address.
  uint32_t u32(uint32_t address) { return ram().read_u32(address); }

  RecordingSerial serial;
  uint64_t tsc = 0;
  int paging_changes = 0;
  int descriptor_table_changes = 0;
  int segment_changes = 0;
  std::vector<uint32_t> invalidated_pages;
  std::vector<uint32_t> traced_writes;

 private:
  std::unique_ptr<Machine> machine_;
  ShadowMmu mmu_;
  GuestLinearMemory linear_;
  CpuState cpu_;
};

// Decodes bytes at cpu().eip and runs them through execute_system_instruction().
SystemOutcome execute(SystemTestContext& ctx, std::vector<uint8_t> bytes);

// Decodes one instruction from bytes placed at eip (the bytes are also
// written to guest memory there, for tests that care).
DecodedInstruction decode(std::vector<uint8_t> bytes, uint32_t eip = 0x100000);

Segment data_segment(uint16_t selector, uint32_t base, uint32_t limit, uint8_t dpl,
                     bool writable = true);
Segment code_segment(uint16_t selector, uint8_t dpl, bool conforming = false);

}  // namespace bt86::test
