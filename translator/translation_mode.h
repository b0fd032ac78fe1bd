// The translation mode: the parts of guest state a translation is
// specialised on, so that the common case runs IDENT without checks.
//
// - cpl and if_sensitive (CPL > IOPL): cli/sti raise #GP instead of storing
//   the virtual IF, and popf keeps IF (and, above CPL 0, IOPL) as the
//   hardware does; at CPL 0 all of them stay in-cache sequences.
// - fs_segment: the guest segment register whose explicit overrides use the
//   host FS prefix (host FS base = window + that segment's guest base). Linux
//   keeps its per-CPU area behind FS in the kernel and its TLS behind GS in
//   user space; every other segment must be flat (base 0), and overrides of
//   them use the host GS prefix like unprefixed accesses. If the other of
//   FS/GS has a base too (Linux's kernel runs with the user's TLS GS
//   loaded), overrides naming it cannot be translated and become #UD.
// - fpu: the CR0/CR4 bits that make x87/MMX/SSE instructions fault (#NM
//   with CR0.TS or CR0.EM, #UD for SSE without CR4.OSFXSR or with CR0.EM):
//   with them set, those instructions become exception exits.
// - single_instruction: a unit of exactly one instruction whose exits are
//   never linked (the runtime runs it to emulate a store to a traced page).
// key() packs all of it into UnitKey::mode.
//
// Few instructions depend on the FPU bits (x87/MMX/SSE) or on whether the
// unrouted one of FS/GS has a base (memory operands naming it). A CPL 0
// unit without them is the same code for every value of those bits and is
// keyed on shared_key(): Linux runs its code with the user's TLS base in GS
// from a process and with GS clear from a kernel thread, and boots with
// CR4.OSFXSR clear, and each of those translated a fifth of the kernel's
// code again. A shared unit may run in any of those modes, so it must not
// be linked to a unit that is right in only one (link_keeps_mode).
#pragma once

#include <Zydis/Zydis.h>

#include <cstdint>

namespace bt86 {

namespace fpu_mode {
inline constexpr uint8_t kTs = 1;        // CR0.TS
inline constexpr uint8_t kEm = 2;        // CR0.EM
inline constexpr uint8_t kMp = 4;        // CR0.MP
inline constexpr uint8_t kNoOsfxsr = 8;  // CR4.OSFXSR clear
}  // namespace fpu_mode

struct TranslationMode {
  uint8_t cpl = 0;
  uint8_t fpu = 0;  // fpu_mode bits.
  bool if_sensitive = false;
  ZydisRegister fs_segment = ZYDIS_REGISTER_FS;  // FS or GS.
  // The other of FS/GS has a non-zero base: its overrides cannot be
  // translated (they become #UD callouts rather than wrong accesses).
  bool other_segment_based = false;
  bool single_instruction = false;

  static constexpr uint32_t kCplMask = 3;
  static constexpr uint32_t kSingleInstructionBit = 16;
  static constexpr uint32_t kFpuShift = 5;
  static constexpr uint32_t kOtherSegmentBasedBit = 1u << 9;
  static constexpr uint32_t kVariantMask = (0xFu << kFpuShift) | kOtherSegmentBasedBit;
  static constexpr uint32_t kSharedBit = 1u << 17;

  uint32_t key() const {
    return uint32_t{cpl} | (if_sensitive ? 4u : 0u) | (fs_segment == ZYDIS_REGISTER_GS ? 8u : 0u) |
           (single_instruction ? kSingleInstructionBit : 0u) | (uint32_t{fpu} << kFpuShift) |
           (other_segment_based ? kOtherSegmentBasedBit : 0u);
  }
  uint32_t shared_key() const { return (key() & ~kVariantMask) | kSharedBit; }
  // Whether units translated in this mode may be keyed on shared_key().
  bool shares_units() const { return cpl == 0; }
  // The key of a unit translated in this mode; uses_variant: it holds an
  // instruction whose translation depends on kVariantMask.
  uint32_t unit_key(bool uses_variant) const {
    return shares_units() && !uses_variant ? shared_key() : key();
  }
  // Whether a link from a unit keyed from_key to one keyed to_key enters
  // code right in every mode the first may run in.
  static bool link_keeps_mode(uint32_t from_key, uint32_t to_key) {
    return shared_of_key(to_key) || !shared_of_key(from_key);
  }
  // The parts of a key the runtime and the debugger read back.
  static uint8_t cpl_of_key(uint32_t key) { return key & kCplMask; }
  static bool single_instruction_of_key(uint32_t key) { return (key & kSingleInstructionBit) != 0; }
  static bool shared_of_key(uint32_t key) { return (key & kSharedBit) != 0; }
};

}  // namespace bt86
