#include "translator/translator.h"

#include <algorithm>
#include <array>
#include <stdexcept>

#include "translator/opcode_table.h"
#include "translator/unit_emitter.h"

namespace bt86 {

namespace {
constexpr uint8_t kPageFaultVector = 14;
constexpr uint8_t kInvalidOpcodeVector = 6;
constexpr uint8_t kGeneralProtectionVector = 13;
}  // namespace

const ZydisDecodedOperand* explicit_store_operand(const DecodedInstruction& d) {
  for (int i = 0; i < d.insn.operand_count_visible; ++i) {
    const ZydisDecodedOperand& op = d.operands[i];
    if (op.type == ZYDIS_OPERAND_TYPE_MEMORY && (op.actions & ZYDIS_OPERAND_ACTION_MASK_WRITE) &&
        op.visibility == ZYDIS_OPERAND_VISIBILITY_EXPLICIT) {
      return &op;
    }
  }
  return nullptr;
}

Translator::Translator(TranslationCache& cache, const TranslatorOptions& options)
    : cache_(cache), options_(options), emitter_(cache) {}

TranslationUnit& Translator::translate(const UnitKey& key, const TranslationMode& mode,
                                       CodeSource& source) {
  if (TranslationUnit* u = try_translate(key, mode, source)) return *u;
  cache_.flush();
  if (TranslationUnit* u = try_translate(key, mode, source)) return *u;
  throw std::runtime_error("translation cache too small for one unit");
}

TranslationUnit* Translator::try_translate(const UnitKey& key, const TranslationMode& mode,
                                           CodeSource& source) {
  const uint32_t start = key.eip;
  const uint32_t max_instructions =
      mode.single_instruction ? 1 : options_.max_instructions_per_unit;
  uint64_t* counter = options_.count_executed ? cache_.new_execution_counter() : nullptr;
  emitter_.begin(cache_.cursor(), key, mode, counter);
  uint32_t eip = start;
  uint32_t count = 0;
  // Reused across instructions: clearing a fresh one (over a kilobyte of
  // Zydis operands) for each was a visible share of translation, and the
  // decoder overwrites what it reports.
  std::array<uint8_t, 15> buffer;
  DecodedInstruction d;
  const CodeSegment& cs = key.code_segment;
  while (true) {
    // Bytes past the CS limit are not fetched: an instruction reaching
    // there raises #GP(0), which takes precedence over a page fault.
    const size_t within_limit =
        eip > cs.limit ? 0 : std::min<uint64_t>(buffer.size(), uint64_t{cs.limit} - eip + 1);
    uint32_t fault_error = 0;
    const size_t readable =
        within_limit == 0 ? 0 : source.fetch(eip, {buffer.data(), within_limit}, &fault_error);
    const DecodeStatus status =
        decoder_.decode(eip, std::span<const uint8_t>(buffer.data(), readable), &d, cs.code_16);
    if (status == DecodeStatus::kTruncated || (readable == 0)) {
      if (count != 0) {
        emitter_.emit_fallthrough(eip);
      } else if (readable == within_limit) {
        emitter_.emit_exception(eip, kGeneralProtectionVector, 0, std::nullopt);
      } else {
        emitter_.emit_exception(eip, kPageFaultVector, fault_error,
                                cs.base + eip + static_cast<uint32_t>(readable));
      }
      break;
    }
    if (status == DecodeStatus::kInvalid) {
      emitter_.emit_exception(eip, kInvalidOpcodeVector, std::nullopt, std::nullopt);
      ++count;
      break;
    }
    ++count;
    OpcodeEntry entry = classify(d);
    if (options_.adapted_stores != nullptr && !mode.single_instruction &&
        explicit_store_operand(d) != nullptr && options_.adapted_stores->contains(d.eip)) {
      entry = {d.mnemonic(), TranslationKind::kCallout, Emitter::kCallout, CalloutId::kTracedStore};
    }
    if (emitter_.emit(d, entry)) break;
    eip = d.next_eip();
    if (count >= max_instructions || emitter_.host_size() >= options_.max_host_bytes_per_unit) {
      emitter_.emit_fallthrough(eip);
      break;
    }
  }
  const std::span<const uint8_t> code = emitter_.finish();
  if (!cache_.fits(code.size())) return nullptr;
  auto unit = emitter_.take_unit();
  stats_.units_translated++;
  stats_.guest_instructions_translated += unit->instructions.size();
  stats_.host_code_bytes += code.size();
  return &cache_.commit(std::move(unit), code);
}

}  // namespace bt86
