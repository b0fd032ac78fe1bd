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

namespace {

constexpr uint8_t kOperandSizePrefix = 0x66;
constexpr uint8_t kAddressSizePrefix = 0x67;

bool is_register(ZydisRegister r, std::initializer_list<ZydisRegister> set) {
  return std::find(set.begin(), set.end(), r) != set.end();
}

// Whether the address size decides something: an explicit memory operand
// or address, or an implicit one through SI/DI/BX (strings, xlat, maskmovq)
// or CX (loop, jcxz). The stack's implicit operands follow SS instead.
bool uses_address_size(const ZydisDecodedInstruction& insn, const ZydisDecodedOperand* operands) {
  const ZydisMnemonic m = insn.mnemonic;
  if (m == ZYDIS_MNEMONIC_LOOP || m == ZYDIS_MNEMONIC_LOOPE || m == ZYDIS_MNEMONIC_LOOPNE ||
      m == ZYDIS_MNEMONIC_JCXZ || m == ZYDIS_MNEMONIC_JECXZ) {
    return true;
  }
  for (int i = 0; i < insn.operand_count; ++i) {
    const ZydisDecodedOperand& op = operands[i];
    if (op.type != ZYDIS_OPERAND_TYPE_MEMORY) continue;
    if (op.visibility != ZYDIS_OPERAND_VISIBILITY_HIDDEN) return true;
    if (is_register(op.mem.base, {ZYDIS_REGISTER_SI, ZYDIS_REGISTER_DI, ZYDIS_REGISTER_BX,
                                  ZYDIS_REGISTER_ESI, ZYDIS_REGISTER_EDI, ZYDIS_REGISTER_EBX})) {
      return true;
    }
  }
  return false;
}

bool same_operand(const ZydisDecodedOperand& a, const ZydisDecodedOperand& b) {
  if (a.type != b.type || a.size != b.size) return false;
  switch (a.type) {
    case ZYDIS_OPERAND_TYPE_REGISTER:
      return a.reg.value == b.reg.value;
    case ZYDIS_OPERAND_TYPE_MEMORY:
      return a.mem.type == b.mem.type && a.mem.segment == b.mem.segment &&
             a.mem.base == b.mem.base && a.mem.index == b.mem.index && a.mem.scale == b.mem.scale &&
             a.mem.disp.value == b.mem.disp.value;
    case ZYDIS_OPERAND_TYPE_POINTER:
      return a.ptr.segment == b.ptr.segment && a.ptr.offset == b.ptr.offset;
    case ZYDIS_OPERAND_TYPE_IMMEDIATE:
      return a.imm.value.u == b.imm.value.u;
    default:
      return true;
  }
}

}  // namespace

GuestDecoder::GuestDecoder() {
  ZydisDecoderInit(&decoder_, ZYDIS_MACHINE_MODE_LEGACY_32, ZYDIS_STACK_WIDTH_32);
  ZydisDecoderInit(&decoder_16_, ZYDIS_MACHINE_MODE_LEGACY_16, ZYDIS_STACK_WIDTH_16);
}

DecodeStatus GuestDecoder::decode(uint32_t eip, std::span<const uint8_t> bytes,
                                  DecodedInstruction* out, bool code_16) const {
  size_t n = std::min<size_t>(bytes.size(), ZYDIS_MAX_INSTRUCTION_LENGTH);
  ZyanStatus status;
  if (code_16) {
    ZydisDecodedInstruction insn16;
    std::array<ZydisDecodedOperand, ZYDIS_MAX_OPERAND_COUNT> operands16;
    status = ZydisDecoderDecodeFull(&decoder_16_, bytes.data(), n, &insn16, operands16.data());
    if (ZYAN_SUCCESS(status) && !transcode_16(insn16, operands16, bytes, out)) {
      return DecodeStatus::kInvalid;
    }
  } else {
    status = ZydisDecoderDecodeFull(&decoder_, bytes.data(), n, &out->insn, out->operands.data());
    if (ZYAN_SUCCESS(status)) {
      out->bytes.fill(0);
      std::memcpy(out->bytes.data(), bytes.data(), out->insn.length);
      out->guest_length = out->insn.length;
    }
  }
  if (status == ZYDIS_STATUS_NO_MORE_DATA) {
    return n < ZYDIS_MAX_INSTRUCTION_LENGTH ? DecodeStatus::kTruncated : DecodeStatus::kInvalid;
  }
  if (!ZYAN_SUCCESS(status)) return DecodeStatus::kInvalid;
  out->eip = eip;
  return DecodeStatus::kOk;
}

// The 32-bit form: the operand-size prefix toggled (unless that makes
// another instruction, as it does for MMX and SSE forms, where the operand
// size means nothing), the address-size prefix toggled where the address
// size decides something and dropped where it does not. The candidate must decode to the same
// mnemonic, visible operands and (when toggled) operand width.
bool GuestDecoder::transcode_16(
    const ZydisDecodedInstruction& insn16,
    const std::array<ZydisDecodedOperand, ZYDIS_MAX_OPERAND_COUNT>& operands16,
    std::span<const uint8_t> bytes, DecodedInstruction* out) const {
  const auto& raw = insn16.raw;
  bool had_operand_size = false;
  bool had_address_size = false;
  std::array<uint8_t, ZYDIS_MAX_INSTRUCTION_LENGTH> kept_prefixes;
  size_t kept = 0;
  for (int i = 0; i < raw.prefix_count; ++i) {
    const uint8_t b = raw.prefixes[i].value;
    if (b == kOperandSizePrefix && raw.prefixes[i].type != ZYDIS_PREFIX_TYPE_MANDATORY) {
      had_operand_size = true;
    } else if (b == kAddressSizePrefix) {
      had_address_size = true;
    } else {
      kept_prefixes[kept++] = b;
    }
  }
  const bool address_size = uses_address_size(insn16, operands16.data());
  const size_t body = insn16.length - raw.prefix_count;
  for (const bool toggle_operand_size : {true, false}) {
    const bool operand_prefix = toggle_operand_size ? !had_operand_size : had_operand_size;
    const bool address_prefix = address_size && !had_address_size;
    const size_t length = operand_prefix + address_prefix + kept + body;
    if (length > ZYDIS_MAX_INSTRUCTION_LENGTH) return false;
    out->bytes.fill(0);
    uint8_t* p = out->bytes.data();
    if (operand_prefix) *p++ = kOperandSizePrefix;
    if (address_prefix) *p++ = kAddressSizePrefix;
    p = std::copy_n(kept_prefixes.begin(), kept, p);
    std::copy_n(bytes.begin() + raw.prefix_count, body, p);
    if (!ZYAN_SUCCESS(ZydisDecoderDecodeFull(&decoder_, out->bytes.data(), length, &out->insn,
                                             out->operands.data()))) {
      continue;
    }
    const ZydisDecodedInstruction& insn = out->insn;
    bool same = insn.length == length && insn.mnemonic == insn16.mnemonic &&
                insn.operand_count_visible == insn16.operand_count_visible &&
                (!toggle_operand_size || insn.operand_width == insn16.operand_width) &&
                (!address_size || insn.address_width == insn16.address_width);
    for (int i = 0; same && i < insn.operand_count_visible; ++i) {
      same = same_operand(out->operands[i], operands16[i]);
    }
    if (same) {
      out->guest_length = insn16.length;
      return true;
    }
  }
  return false;
}

}  // namespace bt86
