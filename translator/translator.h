// The generic translation loop: begin a unit, translate one instruction at a
// time, end the unit. It knows nothing of x86 encodings (UnitEmitter does)
// or of how guest code is fetched (CodeSource does); it owns the unit-size
// policy and the flush-and-retry when the cache is full.
//
//   Translator t(cache, {.count_executed = false});
//   TranslationUnit& u = t.translate(eip, source);  // then enter u.host_start
#pragma once

#include <cstdint>
#include <span>
#include <unordered_set>

#include "translator/guest_decoder.h"
#include "translator/translation_cache.h"
#include "translator/translation_mode.h"
#include "translator/unit_emitter.h"

namespace bt86 {

// Where guest code comes from. fetch() copies up to buffer.size() bytes
// starting at eip (an offset into the code segment of the unit being
// translated: the source adds its base) and returns how many are readable;
// fewer than asked means the next byte would fault (with *fault_error_code
// the #PF error code for it). The translator never asks past the CS limit.
class CodeSource {
 public:
  virtual ~CodeSource() = default;
  virtual size_t fetch(uint32_t eip, std::span<uint8_t> buffer, uint32_t* fault_error_code) = 0;
};

struct TranslatorOptions {
  uint32_t max_instructions_per_unit = 64;
  // Guest EIPs whose stores are translated as CalloutId::kTracedStore
  // (adaptive retranslation; owned by the runtime). Single-instruction
  // units ignore it: they are how the runtime performs such a store.
  const std::unordered_set<uint32_t>* adapted_stores = nullptr;
  uint32_t max_host_bytes_per_unit = 4096;
  bool count_executed = false;
};

struct TranslatorStats {
  uint64_t units_translated = 0;
  uint64_t guest_instructions_translated = 0;
  uint64_t host_code_bytes = 0;
};

// The explicit memory operand d writes, if any (what adaptation can take
// over: the runtime computes its address before running it).
const ZydisDecodedOperand* explicit_store_operand(const DecodedInstruction& d);

class Translator {
 public:
  Translator(TranslationCache& cache, const TranslatorOptions& options);
  // Translates the unit starting at eip; flushes the cache if it is full.
  TranslationUnit& translate(uint32_t eip, CodeSource& source) {
    return translate(UnitKey{eip, eip >> 12, 0, {}}, TranslationMode{}, source);
  }
  TranslationUnit& translate(const UnitKey& key, const TranslationMode& mode, CodeSource& source);
  const TranslatorStats& stats() const { return stats_; }

 private:
  TranslationUnit* try_translate(const UnitKey& key, const TranslationMode& mode,
                                 CodeSource& source);

  TranslationCache& cache_;
  TranslatorOptions options_;
  GuestDecoder decoder_;
  UnitEmitter emitter_;
  TranslatorStats stats_;
};

}  // namespace bt86
