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
//   them use the host GS prefix like unprefixed accesses.
// - single_instruction: a unit of exactly one instruction whose exits are
//   never linked (the runtime runs it to emulate a store to a traced page).
// key() packs all of it into UnitKey::mode.
#pragma once

#include <Zydis/Zydis.h>

#include <cstdint>

namespace bt86 {

struct TranslationMode {
  uint8_t cpl = 0;
  bool if_sensitive = false;
  ZydisRegister fs_segment = ZYDIS_REGISTER_FS;  // FS or GS.
  bool single_instruction = false;

  uint32_t key() const {
    return uint32_t{cpl} | (if_sensitive ? 4u : 0u) | (fs_segment == ZYDIS_REGISTER_GS ? 8u : 0u) |
           (single_instruction ? 16u : 0u);
  }
};

}  // namespace bt86
