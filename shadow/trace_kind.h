// Why a guest frame is traced (write-protected in every window): the VMM
// holds state derived from its contents that a guest write must update.
#pragma once

#include <cstdint>

namespace bt86 {

enum class TraceKind : uint8_t {
  kPageTable = 1 << 0,        // Shadow mappings were derived from it.
  kDescriptorTable = 1 << 1,  // Shadow GDT/LDT/IDT descriptors were derived from it.
  kCode = 1 << 2,             // Translations were made from it.
  kWatch = 1 << 3,            // The debugger watches stores to it.
};

using TraceKinds = uint8_t;

inline constexpr TraceKinds operator|(TraceKind a, TraceKind b) {
  return static_cast<TraceKinds>(static_cast<uint8_t>(a) | static_cast<uint8_t>(b));
}
inline constexpr bool has_kind(TraceKinds kinds, TraceKind k) {
  return (kinds & static_cast<uint8_t>(k)) != 0;
}

}  // namespace bt86
