// Guest instruction decoding: Zydis in 32-bit legacy mode, one instruction at
// a time, with the raw bytes kept next to the decoded form because IDENT
// translation re-encodes from the bytes rather than from the decoded fields.
//
// Code in a 16-bit code segment (CS.D clear) is decoded as 16-bit code and
// then transcoded to the 32-bit instruction that does the same: operand-size
// and address-size prefixes toggled, so `add ax, [bx+si]` becomes
// `66 67 03 00`. Everything downstream sees 32-bit code with prefixes, which
// it must handle anyway; only the length differs (guest_length).
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
  std::array<uint8_t, ZYDIS_MAX_INSTRUCTION_LENGTH> bytes{};  // insn.length of them.
  uint8_t guest_length = 0;  // In guest memory; differs from insn.length in 16-bit code.

  uint8_t length() const { return guest_length; }
  uint32_t next_eip() const { return eip + guest_length; }
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
  // kTruncated: the bytes end inside a valid-looking instruction. code_16:
  // the bytes are 16-bit code; kInvalid also when no 32-bit instruction
  // does the same (one would need more than 15 bytes).
  DecodeStatus decode(uint32_t eip, std::span<const uint8_t> bytes, DecodedInstruction* out,
                      bool code_16 = false) const;

 private:
  bool transcode_16(const ZydisDecodedInstruction& insn16,
                    const std::array<ZydisDecodedOperand, ZYDIS_MAX_OPERAND_COUNT>& operands16,
                    std::span<const uint8_t> bytes, DecodedInstruction* out) const;

  ZydisDecoder decoder_{};
  ZydisDecoder decoder_16_{};
};

}  // namespace bt86
