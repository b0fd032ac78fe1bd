#include "translator/ident_encoder.h"

namespace bt86 {
namespace {

constexpr uint8_t kAddressSizePrefix = 0x67;

bool is_segment_or_address_prefix(uint8_t b) {
  return b == 0x26 || b == 0x2E || b == 0x36 || b == 0x3E || b == 0x64 || b == 0x65 ||
         b == kAddressSizePrefix;
}

void append_legacy_prefixes(const DecodedInstruction& d, std::vector<uint8_t>& out) {
  for (int i = 0; i < d.insn.raw.prefix_count; ++i) {
    if (!is_segment_or_address_prefix(d.bytes[i])) out.push_back(d.bytes[i]);
  }
}

// ModRM (reg field replaced when reg_field >= 0), SIB and displacement, with
// absolute disp32 moved from RIP-relative to SIB form. A moffs operand
// (no ModRM; Zydis reports the offset as the displacement) becomes that
// absolute SIB form.
void append_address(const DecodedInstruction& d, int reg_field, std::vector<uint8_t>& out) {
  const auto& raw = d.insn.raw;
  if (!d.has_attribute(ZYDIS_ATTRIB_HAS_MODRM)) {
    out.push_back(static_cast<uint8_t>(((reg_field & 7) << 3) | 0x04));
    out.push_back(0x25);
    const auto offset = static_cast<uint32_t>(raw.disp.value);
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(offset >> (8 * i)));
    return;
  }
  uint8_t modrm = d.bytes[raw.modrm.offset];
  if (reg_field >= 0) modrm = static_cast<uint8_t>((modrm & 0xC7) | ((reg_field & 7) << 3));
  size_t end = raw.modrm.offset + 1;
  if (raw.sib.offset != 0) end = raw.sib.offset + 1;
  if (raw.disp.size != 0) end = raw.disp.offset + raw.disp.size / 8;
  if ((modrm & 0xC7) == 0x05) {
    out.push_back(static_cast<uint8_t>((modrm & 0xF8) | 0x04));
    out.push_back(0x25);
  } else {
    out.push_back(modrm);
  }
  out.insert(out.end(), d.bytes.begin() + raw.modrm.offset + 1, d.bytes.begin() + end);
}

// ModRM naming [reg] (0..7, never ESP), keeping the ModRM reg field.
void append_register_address(uint8_t modrm, int reg, std::vector<uint8_t>& out) {
  if (reg == 5) {
    // mod=00 rm=101 is disp32: EBP takes mod=01 with a zero disp8.
    out.push_back(static_cast<uint8_t>(0x40 | (modrm & 0x38) | reg));
    out.push_back(0);
    return;
  }
  out.push_back(static_cast<uint8_t>((modrm & 0x38) | reg));
}

bool is_moffs_mov(const DecodedInstruction& d) {
  return d.insn.encoding == ZYDIS_INSTRUCTION_ENCODING_LEGACY &&
         d.insn.opcode_map == ZYDIS_OPCODE_MAP_DEFAULT && d.insn.opcode >= 0xA0 &&
         d.insn.opcode <= 0xA3;
}

}  // namespace

bool can_encode_with_address_register(const DecodedInstruction& d) {
  return d.has_attribute(ZYDIS_ATTRIB_HAS_MODRM) || is_moffs_mov(d);
}

void encode_ident(const DecodedInstruction& d, std::vector<uint8_t>& out, uint8_t segment_prefix,
                  int address_register) {
  const auto& insn = d.insn;
  const auto& raw = insn.raw;
  const bool memory = d.has_memory_operand();
  if (memory) {
    if (insn.mnemonic != ZYDIS_MNEMONIC_LEA) out.push_back(segment_prefix);
    out.push_back(kAddressSizePrefix);
  }
  append_legacy_prefixes(d, out);
  size_t pos = raw.prefix_count;
  if (address_register >= 0 && is_moffs_mov(d)) {
    // mov AL/eAX <-> [moffs]: the ModRM forms 8A/8B/88/89 with reg = eAX.
    static constexpr uint8_t kModrmForm[] = {0x8A, 0x8B, 0x88, 0x89};
    out.push_back(kModrmForm[insn.opcode - 0xA0]);
    append_register_address(0, address_register, out);
    return;
  }
  if (insn.encoding == ZYDIS_INSTRUCTION_ENCODING_LEGACY &&
      insn.opcode_map == ZYDIS_OPCODE_MAP_DEFAULT) {
    if (insn.opcode >= 0x40 && insn.opcode <= 0x4F) {
      out.push_back(0xFF);
      out.push_back(static_cast<uint8_t>((insn.opcode < 0x48 ? 0xC0 : 0xC8) | (insn.opcode & 7)));
      return;
    }
  }
  const bool has_modrm = d.has_attribute(ZYDIS_ATTRIB_HAS_MODRM);
  size_t copy_end = has_modrm ? raw.modrm.offset : insn.length;
  size_t first = out.size();
  out.insert(out.end(), d.bytes.begin() + pos, d.bytes.begin() + copy_end);
  if (insn.encoding == ZYDIS_INSTRUCTION_ENCODING_LEGACY &&
      insn.opcode_map == ZYDIS_OPCODE_MAP_DEFAULT && insn.opcode == 0x82) {
    out[out.size() - 1] = 0x80;
  }
  if (insn.encoding == ZYDIS_INSTRUCTION_ENCODING_VEX) {
    // 32-bit mode has no R/X/B extension and no vvvv bit 3; GPR-form VEX.W is
    // ignored there but means 64-bit in 64-bit mode.
    uint8_t* vex = &out[first];
    const bool gpr_form =
        insn.meta.category == ZYDIS_CATEGORY_BMI1 || insn.meta.category == ZYDIS_CATEGORY_BMI2;
    if (vex[0] == 0xC5) {
      vex[1] |= 0xC0;
    } else {
      vex[1] |= 0xE0;
      vex[2] |= 0x40;
      if (gpr_form) vex[2] &= 0x7F;
    }
  }
  if (!has_modrm) return;
  uint8_t modrm = d.bytes[raw.modrm.offset];
  if ((modrm >> 6) == 3) {
    out.insert(out.end(), d.bytes.begin() + raw.modrm.offset, d.bytes.begin() + insn.length);
    return;
  }
  if (address_register >= 0) {
    append_register_address(modrm, address_register, out);
  } else {
    append_address(d, -1, out);
  }
  size_t address_end = raw.modrm.offset + 1;
  if (raw.sib.offset != 0) address_end = raw.sib.offset + 1;
  if (raw.disp.size != 0) address_end = raw.disp.offset + raw.disp.size / 8;
  out.insert(out.end(), d.bytes.begin() + address_end, d.bytes.begin() + insn.length);
}

void encode_memory_access(const DecodedInstruction& d, std::initializer_list<uint8_t> opcode,
                          uint8_t host_reg, bool operand_16, std::vector<uint8_t>& out,
                          uint8_t segment_prefix) {
  out.push_back(segment_prefix);
  out.push_back(kAddressSizePrefix);
  if (operand_16) out.push_back(0x66);
  if (host_reg >= 8) out.push_back(0x44);
  out.insert(out.end(), opcode.begin(), opcode.end());
  append_address(d, host_reg, out);
}

}  // namespace bt86
