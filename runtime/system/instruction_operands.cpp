#include "runtime/system/instruction_operands.h"

#include <fmt/format.h>

#include <stdexcept>

namespace bt86 {
namespace {

struct GprSlot {
  int index;
  int width;  // 8, 16 or 32
  int shift;  // 8 for AH..BH.
};

GprSlot slot_of(ZydisRegister reg) {
  if (reg >= ZYDIS_REGISTER_EAX && reg <= ZYDIS_REGISTER_EDI)
    return {reg - ZYDIS_REGISTER_EAX, 32, 0};
  if (reg >= ZYDIS_REGISTER_AX && reg <= ZYDIS_REGISTER_DI) return {reg - ZYDIS_REGISTER_AX, 16, 0};
  if (reg >= ZYDIS_REGISTER_AL && reg <= ZYDIS_REGISTER_BL) return {reg - ZYDIS_REGISTER_AL, 8, 0};
  if (reg >= ZYDIS_REGISTER_AH && reg <= ZYDIS_REGISTER_BH) return {reg - ZYDIS_REGISTER_AH, 8, 8};
  // The dispatcher routes only forms whose register operands are general
  // registers; anything else is a bug in bt86, not in the guest.
  throw std::logic_error(fmt::format("{} is not a general register", ZydisRegisterGetString(reg)));
}

uint32_t mask_of(int width) {
  return width == 32 ? 0xFFFFFFFFu : ((1u << width) - 1);
}

}  // namespace

SystemOutcome memory_operand_linear(SystemContext& ctx, const DecodedInstruction& insn,
                                    const ZydisDecodedOperand& op, uint32_t displacement, int size,
                                    SegmentAccess access, uint32_t* linear) {
  const CpuState& cpu = ctx.cpu();
  uint32_t offset = effective_address(cpu, insn, op) + displacement;
  if (insn.insn.address_width == 16) offset &= 0xFFFF;
  const SegReg reg = segment_of(op.mem.segment);
  const Segment& seg = cpu.segment(reg);
  SystemOutcome o = check_segment_access(seg, reg, offset, size, access);
  if (o.continues()) *linear = seg.base + offset;
  return o;
}

uint32_t read_gpr(const CpuState& cpu, ZydisRegister reg) {
  const GprSlot s = slot_of(reg);
  return (cpu.gpr[s.index] >> s.shift) & mask_of(s.width);
}

void write_gpr(CpuState& cpu, ZydisRegister reg, uint32_t value) {
  const GprSlot s = slot_of(reg);
  const uint32_t mask = mask_of(s.width) << s.shift;
  uint32_t& r = cpu.gpr[s.index];
  r = (r & ~mask) | ((value << s.shift) & mask);
}

bool is_segment_register(ZydisRegister reg) {
  return reg >= ZYDIS_REGISTER_ES && reg <= ZYDIS_REGISTER_GS;
}

SegReg segment_of(ZydisRegister reg) {
  return static_cast<SegReg>(reg - ZYDIS_REGISTER_ES);
}

uint32_t effective_address(const CpuState& cpu, const DecodedInstruction& insn,
                           const ZydisDecodedOperand& op) {
  uint32_t a = static_cast<uint32_t>(op.mem.disp.value);
  if (op.mem.base != ZYDIS_REGISTER_NONE) a += read_gpr(cpu, op.mem.base);
  if (op.mem.index != ZYDIS_REGISTER_NONE) a += read_gpr(cpu, op.mem.index) * op.mem.scale;
  return insn.insn.address_width == 16 ? (a & 0xFFFF) : a;
}

SystemOutcome read_memory_operand(SystemContext& ctx, const DecodedInstruction& insn,
                                  const ZydisDecodedOperand& op, uint32_t displacement, int size,
                                  uint32_t* value) {
  uint32_t linear = 0;
  SystemOutcome o =
      memory_operand_linear(ctx, insn, op, displacement, size, SegmentAccess::kRead, &linear);
  if (!o.continues()) return o;
  return read_linear_value(ctx, linear, size, value, ctx.cpu().cpl() == 3);
}

SystemOutcome write_memory_operand(SystemContext& ctx, const DecodedInstruction& insn,
                                   const ZydisDecodedOperand& op, uint32_t displacement, int size,
                                   uint32_t value) {
  uint32_t linear = 0;
  SystemOutcome o =
      memory_operand_linear(ctx, insn, op, displacement, size, SegmentAccess::kWrite, &linear);
  if (!o.continues()) return o;
  return write_linear_value(ctx, linear, size, value, ctx.cpu().cpl() == 3);
}

SystemOutcome read_operand(SystemContext& ctx, const DecodedInstruction& insn,
                           const ZydisDecodedOperand& op, int size, uint32_t* value) {
  switch (op.type) {
    case ZYDIS_OPERAND_TYPE_REGISTER:
      *value = read_gpr(ctx.cpu(), op.reg.value) & mask_of(size * 8);
      return SystemOutcome::ok();
    case ZYDIS_OPERAND_TYPE_IMMEDIATE:
      *value = static_cast<uint32_t>(op.imm.value.u) & mask_of(size * 8);
      return SystemOutcome::ok();
    default:
      return read_memory_operand(ctx, insn, op, 0, size, value);
  }
}

SystemOutcome write_operand(SystemContext& ctx, const DecodedInstruction& insn,
                            const ZydisDecodedOperand& op, int size, uint32_t value) {
  if (op.type == ZYDIS_OPERAND_TYPE_REGISTER) {
    write_gpr(ctx.cpu(), op.reg.value, value);
    return SystemOutcome::ok();
  }
  return write_memory_operand(ctx, insn, op, 0, size, value);
}

}  // namespace bt86
