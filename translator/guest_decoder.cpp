#include "translator/guest_decoder.h"

#include <algorithm>
#include <cstring>

namespace bt86 {

const ZydisDecodedOperand* DecodedInstruction::memory_operand() const {
  for (int i = 0; i < insn.operand_count; ++i) {
    const auto& op = operands[i];
    if (op.type == ZYDIS_OPERAND_TYPE_MEMORY && op.mem.type == ZYDIS_MEMOP_TYPE_MEM) return &op;
  }
  return nullptr;
}

bool DecodedInstruction::has_memory_operand() const {
  for (int i = 0; i < insn.operand_count; ++i) {
    if (operands[i].type == ZYDIS_OPERAND_TYPE_MEMORY) return true;
  }
  return false;
}

uint32_t DecodedInstruction::branch_target() const {
  uint32_t target = next_eip() + static_cast<uint32_t>(insn.raw.imm[0].value.s);
  return insn.operand_width == 16 ? (target & 0xFFFF) : target;
}

GuestDecoder::GuestDecoder() {
  ZydisDecoderInit(&decoder_, ZYDIS_MACHINE_MODE_LEGACY_32, ZYDIS_STACK_WIDTH_32);
}

DecodeStatus GuestDecoder::decode(uint32_t eip, std::span<const uint8_t> bytes,
                                  DecodedInstruction* out) const {
  size_t n = std::min<size_t>(bytes.size(), ZYDIS_MAX_INSTRUCTION_LENGTH);
  ZyanStatus status =
      ZydisDecoderDecodeFull(&decoder_, bytes.data(), n, &out->insn, out->operands.data());
  if (status == ZYDIS_STATUS_NO_MORE_DATA) {
    return n < ZYDIS_MAX_INSTRUCTION_LENGTH ? DecodeStatus::kTruncated : DecodeStatus::kInvalid;
  }
  if (!ZYAN_SUCCESS(status)) return DecodeStatus::kInvalid;
  out->eip = eip;
  out->bytes.fill(0);
  std::memcpy(out->bytes.data(), bytes.data(), out->insn.length);
  return DecodeStatus::kOk;
}

}  // namespace bt86
