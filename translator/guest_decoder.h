// Guest instruction decoding: Zydis in 32-bit legacy mode, one instruction at
// a time, with the raw bytes kept next to the decoded form because IDENT
// translation re-encodes from the bytes rather than from the decoded fields.
#pragma once

#include <Zydis/Zydis.h>

#include <array>
#include <cstdint>
#include <span>

namespace bt86 {

struct DecodedInstruction {
  uint32_t eip = 0;
  ZydisDecodedInstruction insn{};
  std::array<ZydisDecodedOperand, ZYDIS_MAX_OPERAND_COUNT> operands{};
  std::array<uint8_t, ZYDIS_MAX_INSTRUCTION_LENGTH> bytes{};

  uint8_t length() const { return insn.length; }
  uint32_t next_eip() const { return eip + insn.length; }
  ZydisMnemonic mnemonic() const { return insn.mnemonic; }
  bool has_attribute(ZydisInstructionAttributes a) const { return (insn.attributes & a) != 0; }
  // The first explicit or implicit memory operand (not an address-generation
  // one), or nullptr.
  const ZydisDecodedOperand* memory_operand() const;
  bool has_memory_operand() const;  // Including lea's address generation.
  // For relative branches: the guest target, honouring 16-bit operand size.
  uint32_t branch_target() const;
};

enum class DecodeStatus { kOk, kInvalid, kTruncated };

class GuestDecoder {
 public:
  GuestDecoder();
  // bytes holds everything readable from eip on (possibly fewer than 15).
  // kTruncated: the bytes end inside a valid-looking instruction.
  DecodeStatus decode(uint32_t eip, std::span<const uint8_t> bytes, DecodedInstruction* out) const;

 private:
  ZydisDecoder decoder_{};
};

}  // namespace bt86
