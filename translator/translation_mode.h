// The translation mode: the parts of guest state a translation is
// specialised on, so that the common case runs IDENT without checks.
//
// - cpl and if_sensitive (CPL > IOPL): cli/sti raise #GP instead of storing
//   the virtual IF, and popf keeps IF (and, above CPL 0, IOPL) as the
//   hardware does; at CPL 0 all of them stay in-cache sequences.
// - fs_segment: the guest segment register whose explicit overrides use the
//   host FS prefix (host FS base = window + that segment's guest base). Linux
//   keeps its per-CPU area behind FS in the kernel and its TLS behind GS in
//   user space; that segment must be flat but for its base.
// - compensated: the segment registers that are not flat (a base other than
//   0, other than the routed FS/GS; a limit below 4 GiB; expand-down;
//   read-only; null), one bit per register in Zydis order (ES CS SS DS FS
//   GS). Accesses through them are compensated: the offset is checked
//   against the limits and the base added, both read from VcpuContext::
//   segment_checks, so a change of base or limit alone needs no
//   retranslation. Accesses through the others are IDENT (the GS prefix, or
//   the FS prefix for fs_segment).
// - stack_16: SS is a 16-bit stack segment (B clear): implicit stack
//   operations address and move SP alone, wrapping at 64 KiB, and leave the
//   upper half of ESP as it is. SS is compensated then.
// - fpu: the CR0/CR4 bits that make x87/MMX/SSE instructions fault (#NM
//   with CR0.TS or CR0.EM, #UD for SSE without CR4.OSFXSR or with CR0.EM):
//   with them set, those instructions become exception exits.
// - single_instruction: a unit of exactly one instruction whose exits are
//   never linked (the runtime runs it to emulate a store to a traced page).
// - timestamp_disabled: CR4.TSD at CPL > 0, where rdtsc is #GP(0); rdtsc
//   then leaves as the system callout, which raises it. Elsewhere it runs
//   IDENT and reads the host's counter.
// key() packs all of it into UnitKey::mode.
//
// Few instructions depend on the FPU bits (x87/MMX/SSE) or on whether the
// unrouted one of FS/GS is compensated (only explicit overrides name it).
// A CPL 0 unit without them, with ES, CS, DS and SS flat, is the same
// code for every value of those bits and is keyed on shared_key(): Linux
// runs its code with the user's TLS base in GS from a process and with GS
// clear from a kernel thread, and boots with CR4.OSFXSR clear, and each of
// those translated a fifth of the kernel's code again. A shared unit may
// run in any of those modes, so it must not be linked to a unit that is
// right in only one (link_keeps_mode).
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
  uint8_t compensated = 0;                       // 1 << (segment register - ZYDIS_REGISTER_ES).
  bool stack_16 = false;
  bool single_instruction = false;
  bool timestamp_disabled = false;

  static constexpr uint32_t kCplMask = 3;
  static constexpr uint32_t kSingleInstructionBit = 16;
  static constexpr uint32_t kFpuShift = 5;
  static constexpr uint32_t kCompensatedShift = 10;
  static constexpr uint32_t kSharedBit = 1u << 17;
  static constexpr uint32_t kStack16Bit = 1u << 18;
  static constexpr uint32_t kTimestampDisabledBit = 1u << 19;

  static constexpr uint8_t segment_bit(ZydisRegister segment) {
    return static_cast<uint8_t>(1u << (segment - ZYDIS_REGISTER_ES));
  }
  // The segments that must be flat for units to be shared: the ones plain
  // accesses use without naming them (string destinations: ES), and CS,
  // which Linux names on every return to user space (verw %cs:...).
  static constexpr uint8_t kFlatForSharing = 0b1111;  // ES CS SS DS (bits of segment_bit()).
  bool compensates(ZydisRegister segment) const {
    return (compensated & segment_bit(segment)) != 0;
  }
  ZydisRegister unrouted_segment() const {
    return fs_segment == ZYDIS_REGISTER_FS ? ZYDIS_REGISTER_GS : ZYDIS_REGISTER_FS;
  }
  // Whether an access through segment makes a translation depend on
  // variant_mask(): the unrouted one of FS/GS is named only by explicit
  // overrides, which few instructions have.
  bool is_variant_segment(ZydisRegister segment) const { return segment == unrouted_segment(); }
  // The key bits shared units do not depend on.
  uint32_t variant_mask() const {
    return (0xFu << kFpuShift) | (uint32_t{segment_bit(unrouted_segment())} << kCompensatedShift);
  }

  uint32_t key() const {
    return uint32_t{cpl} | (if_sensitive ? 4u : 0u) | (fs_segment == ZYDIS_REGISTER_GS ? 8u : 0u) |
           (single_instruction ? kSingleInstructionBit : 0u) | (stack_16 ? kStack16Bit : 0u) |
           (timestamp_disabled ? kTimestampDisabledBit : 0u) | (uint32_t{fpu} << kFpuShift) |
           (uint32_t{compensated} << kCompensatedShift);
  }
  uint32_t shared_key() const { return (key() & ~variant_mask()) | kSharedBit; }
  // Whether units translated in this mode may be keyed on shared_key().
  bool shares_units() const { return cpl == 0 && (compensated & kFlatForSharing) == 0; }
  // The key of a unit translated in this mode; uses_variant: it holds an
  // instruction whose translation depends on variant_mask().
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
