// Port I/O (Vol. 2 IN, OUT, INS, OUTS; Vol. 1 19.5): the protected-mode I/O
// permission check, then machine().ports().
//
// Permission: CPL <= IOPL, else every bit of the access in the TSS I/O
// permission bitmap must be clear (a bitmap, or a 32-bit TSS, that does not
// cover the port is #GP(0)). The bitmap is read like any TSS field, through
// linear_memory() at supervisor privilege.
//
// String forms: INS stores to ES:(E)DI (no override), OUTS reads from
// DS:(E)SI or its override; (E)SI/(E)DI step by the access size per DF;
// address size 16 uses SI/DI/CX. REP runs to completion in one call with
// registers updated after every element, so a fault in the middle leaves
// precise state (EIP at the instruction, ECX/EDI/ESI the elements left).
#include "monitor/machine.h"
#include "runtime/system/guest_event.h"
#include "runtime/system/instruction_operands.h"
#include "runtime/system/system_instructions.h"
#include "shadow/descriptor.h"

namespace bt86 {
namespace {

constexpr uint32_t kIoMapBaseOffset = 0x66;

SystemOutcome check_io_permission(SystemContext& ctx, uint16_t port, int size) {
  const CpuState& cpu = ctx.cpu();
  const uint8_t iopl = (cpu.eflags & eflags::kIoplMask) >> 12;
  if (cpu.cpl() <= iopl) return SystemOutcome::ok();
  const Segment& tr = cpu.tr;
  const bool tss32 =
      !tr.unusable && !tr.s &&
      (tr.type == descriptor_type::kTss32Busy || tr.type == descriptor_type::kTss32Available);
  if (!tss32 || tr.limit < kIoMapBaseOffset + 1) return SystemOutcome::fault(vector::kGp, 0);
  uint32_t map_base = 0;
  SystemOutcome o = read_linear_value(ctx, tr.base + kIoMapBaseOffset, 2, &map_base, false);
  if (!o.continues()) return o;
  const uint32_t byte = map_base + port / 8;
  if (byte + 1 > tr.limit) return SystemOutcome::fault(vector::kGp, 0);
  uint32_t bits = 0;
  o = read_linear_value(ctx, tr.base + byte, 2, &bits, false);
  if (!o.continues()) return o;
  const uint32_t mask = ((1u << size) - 1) << (port & 7);
  if (bits & mask) return SystemOutcome::fault(vector::kGp, 0);
  return o;
}

uint32_t port_in(SystemContext& ctx, uint16_t port, int size) {
  uint8_t bytes[4] = {};
  ctx.machine().ports().read(port, std::span<uint8_t>(bytes, size));
  return bytes[0] | (bytes[1] << 8) | (bytes[2] << 16) | (uint32_t{bytes[3]} << 24);
}

void port_out(SystemContext& ctx, uint16_t port, int size, uint32_t value) {
  const uint8_t bytes[4] = {static_cast<uint8_t>(value), static_cast<uint8_t>(value >> 8),
                            static_cast<uint8_t>(value >> 16), static_cast<uint8_t>(value >> 24)};
  ctx.machine().ports().write(port, std::span<const uint8_t>(bytes, size));
}

uint16_t port_operand(const CpuState& cpu, const ZydisDecodedOperand& op) {
  if (op.type == ZYDIS_OPERAND_TYPE_IMMEDIATE) return static_cast<uint16_t>(op.imm.value.u & 0xFF);
  return static_cast<uint16_t>(cpu.reg(Gpr::kEdx));
}

int string_size(ZydisMnemonic m) {
  switch (m) {
    case ZYDIS_MNEMONIC_INSB:
    case ZYDIS_MNEMONIC_OUTSB:
      return 1;
    case ZYDIS_MNEMONIC_INSW:
    case ZYDIS_MNEMONIC_OUTSW:
      return 2;
    default:
      return 4;
  }
}

// (E)CX, (E)SI or (E)DI at the instruction's address size.
struct AddressRegisters {
  uint32_t mask;
  uint32_t get(const CpuState& cpu, Gpr r) const { return cpu.reg(r) & mask; }
  void set(CpuState& cpu, Gpr r, uint32_t v) const {
    cpu.reg(r) = (cpu.reg(r) & ~mask) | (v & mask);
  }
};

}  // namespace

SystemOutcome execute_in(SystemContext& ctx, const DecodedInstruction& insn) {
  CpuState& cpu = ctx.cpu();
  const ZydisRegister dest = insn.operands[0].reg.value;
  const int size = insn.operands[0].size / 8;
  const uint16_t port = port_operand(cpu, insn.operands[1]);
  SystemOutcome o = check_io_permission(ctx, port, size);
  if (!o.continues()) return o;
  write_gpr(cpu, dest, port_in(ctx, port, size));
  return complete(ctx, insn);
}

SystemOutcome execute_out(SystemContext& ctx, const DecodedInstruction& insn) {
  CpuState& cpu = ctx.cpu();
  const int size = insn.operands[1].size / 8;
  const uint16_t port = port_operand(cpu, insn.operands[0]);
  SystemOutcome o = check_io_permission(ctx, port, size);
  if (!o.continues()) return o;
  port_out(ctx, port, size, read_gpr(cpu, insn.operands[1].reg.value));
  return complete(ctx, insn);
}

SystemOutcome execute_string_io(SystemContext& ctx, const DecodedInstruction& insn) {
  CpuState& cpu = ctx.cpu();
  const ZydisMnemonic m = insn.mnemonic();
  const bool input =
      m == ZYDIS_MNEMONIC_INSB || m == ZYDIS_MNEMONIC_INSW || m == ZYDIS_MNEMONIC_INSD;
  const int size = string_size(m);
  const uint16_t port = static_cast<uint16_t>(cpu.reg(Gpr::kEdx));
  const bool rep = insn.has_attribute(ZYDIS_ATTRIB_HAS_REP);
  const AddressRegisters regs{insn.insn.address_width == 16 ? 0xFFFFu : 0xFFFFFFFFu};
  const Gpr index = input ? Gpr::kEdi : Gpr::kEsi;
  const SegReg segment = input ? SegReg::kEs : segment_of(insn.memory_operand()->mem.segment);
  const uint32_t step = (cpu.eflags & eflags::kDf) ? static_cast<uint32_t>(-size) : size;
  SystemOutcome o = check_io_permission(ctx, port, size);
  if (!o.continues()) return o;
  while (!rep || regs.get(cpu, Gpr::kEcx) != 0) {
    const uint32_t offset = regs.get(cpu, index);
    if (input) {
      o = check_segment_access(cpu.segment(segment), segment, offset, size, SegmentAccess::kWrite);
      if (!o.continues()) return o;
      o = write_segmented(ctx, segment, offset, size, port_in(ctx, port, size));
    } else {
      uint32_t value = 0;
      o = read_segmented(ctx, segment, offset, size, &value);
      if (o.continues()) port_out(ctx, port, size, value);
    }
    if (!o.continues()) return o;
    regs.set(cpu, index, offset + step);
    if (!rep) break;
    regs.set(cpu, Gpr::kEcx, regs.get(cpu, Gpr::kEcx) - 1);
  }
  return complete(ctx, insn);
}

}  // namespace bt86
