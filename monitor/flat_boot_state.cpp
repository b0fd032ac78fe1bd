#include "monitor/flat_boot_state.h"

namespace bt86 {

namespace {

// Flat base 0, limit 0xFFFFF pages, G=1, D=1, P=1, DPL 0, with the accessed
// bit already set so that no backend has to write it back.
constexpr uint64_t kFlatCode = 0x00CF9B000000FFFFull;
constexpr uint64_t kFlatData = 0x00CF93000000FFFFull;
constexpr uint8_t kCodeExecReadAccessed = 0xB;
constexpr uint8_t kDataReadWriteAccessed = 0x3;

}  // namespace

CpuState flat_boot_state(GuestMemory& memory, uint32_t gdt_addr, uint32_t entry) {
  const uint64_t gdt[4] = {0, 0, kFlatCode, kFlatData};
  memory.write(gdt_addr, {reinterpret_cast<const uint8_t*>(gdt), sizeof gdt});

  CpuState s;
  s.eip = entry;
  s.eflags = eflags::kFixed1;
  s.cr0 = cr0::kPe | cr0::kEt;
  s.gdtr = {gdt_addr, static_cast<uint16_t>(kBootGdtSize - 1)};
  s.segment(SegReg::kCs) = flat_segment(kBootCodeSelector, kCodeExecReadAccessed, 0);
  for (SegReg r : {SegReg::kDs, SegReg::kEs, SegReg::kSs, SegReg::kFs, SegReg::kGs}) {
    s.segment(r) = flat_segment(kBootDataSelector, kDataReadWriteAccessed, 0);
  }
  // No LDT; a TR that hardware-assisted entry accepts (busy 32-bit TSS) until
  // the guest loads its own.
  s.ldtr.unusable = true;
  s.ldtr.type = 2;
  s.tr.type = 0xB;
  s.tr.present = true;
  s.tr.limit = 0xFFFF;
  return s;
}

}  // namespace bt86
