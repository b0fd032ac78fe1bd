// Re-encoding guest instruction bytes as 64-bit host instructions.
//
// IDENT translation copies the guest bytes and rewrites only what 64-bit
// mode reads differently:
//   - memory operands get the address-size prefix 0x67 (effective addresses
//     wrap at 32 bits exactly as on the guest) and the GS prefix (GS base =
//     the guest window); guest segment-override prefixes are dropped, which
//     is right for the flat segments the translator is specialised on;
//   - ModRM mod=00 rm=101 (absolute disp32) would become RIP-relative and is
//     re-encoded with a SIB byte (base none, index none);
//   - one-byte inc/dec (0x40-0x4F, REX in 64-bit mode) become FF /0 and FF /1;
//   - 0x82 (an alias of 0x80, invalid in 64-bit mode) becomes 0x80;
//   - VEX fields that 32-bit mode ignores are forced to their neutral values.
// No REX prefix is ever added to an IDENT instruction, so AH..BH keep their
// meaning. Compensated code uses encode_memory_access() to apply a guest
// memory operand to a monitor register (r8..r15) instead.
#pragma once

#include <cstdint>
#include <vector>

#include "translator/guest_decoder.h"

namespace bt86 {

inline constexpr uint8_t kHostGsPrefix = 0x65;
inline constexpr uint8_t kHostFsPrefix = 0x64;

// address_register (0..7, not ESP) >= 0: the memory operand becomes
// [that guest register], which a compensated access has loaded with the
// linear address; only for can_encode_with_address_register() forms.
void encode_ident(const DecodedInstruction& d, std::vector<uint8_t>& out,
                  uint8_t segment_prefix = kHostGsPrefix, int address_register = -1);
// The memory operand is in a ModRM byte, or is the moffs of mov A0-A3.
bool can_encode_with_address_register(const DecodedInstruction& d);

// Appends "opcode reg, [guest memory operand of d]" with the 0x65/0x67
// prefixes; host_reg is 0..15 (8..15 adds REX.R), operand_16 adds 0x66.
void encode_memory_access(const DecodedInstruction& d, std::initializer_list<uint8_t> opcode,
                          uint8_t host_reg, bool operand_16, std::vector<uint8_t>& out,
                          uint8_t segment_prefix = kHostGsPrefix);

}  // namespace bt86
