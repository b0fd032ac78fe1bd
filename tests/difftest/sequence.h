// Random instruction sequences for differential testing: generation from the
// form table, encoding (asmjit, 32-bit), and the flag analysis that says
// which arithmetic flags are architecturally undefined at each point.
//
// A sequence is a list of records; a record is one instruction form
// instantiated with concrete operands plus the set-up it needs (address
// registers, CL counts, ECX bounds, DF), so that dropping a record while
// minimizing never leaves a half-built instruction. Forward branches skip
// whole records. The generator never lets an instruction read a flag that an
// earlier one left undefined (it inserts a cmp first), because the two sides
// are only required to agree on defined flags.
//
// Guest memory layout shared by both sides (kLayout*): code at 0x1000, a
// random data area, a finite-float area for x87 loads, one read-only page,
// one no-access page, the stack, and nothing mapped at or above 0x10000.
#pragma once

#include <asmjit/x86.h>

#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <vector>

#include "monitor/cpu_state.h"
#include "tests/difftest/instruction_forms.h"

namespace bt86::difftest {

inline constexpr uint32_t kCodeBase = 0x1000;
inline constexpr uint32_t kCodeEnd = 0x3000;
inline constexpr uint32_t kDataBase = 0x8000;
inline constexpr uint32_t kDataEnd = 0xB000;
inline constexpr uint32_t kFloat32Area = 0xB000;  // 16 finite floats.
inline constexpr uint32_t kFloat64Area = 0xB040;  // 16 finite doubles.
inline constexpr uint32_t kScratchArea = 0xB100;  // fldcw operands, x87 stores.
inline constexpr uint32_t kReadOnlyPage = 0xC000;
inline constexpr uint32_t kNoAccessPage = 0xD000;
inline constexpr uint32_t kStackBottom = 0xE000;
inline constexpr uint32_t kStackTop = 0xF800;
inline constexpr uint32_t kMemorySize = 0x10000;

struct Step {
  enum class Kind : uint8_t { kInst, kRaw, kJumpForward, kBindLocal, kJumpLocal };
  Kind kind = Kind::kInst;
  asmjit::InstId id = 0;
  asmjit::InstOptions options = asmjit::InstOptions::kNone;
  asmjit::Operand ops[3];
  uint8_t op_count = 0;
  std::vector<uint8_t> raw;
  int target = 0;  // kJumpForward: records skipped; k*Local: local label.
};

struct Record {
  const InstructionForm* form = nullptr;
  std::vector<Step> steps;
  uint32_t reads = 0;
  uint32_t defines = 0;
  uint32_t undefs = 0;
  int skip = -1;  // Records a forward branch in this record may skip.
};

struct Sequence {
  std::vector<Record> records;
};

struct EncodedSequence {
  std::vector<uint8_t> bytes;            // Ends with hlt.
  std::vector<uint32_t> record_offsets;  // Per record, then the hlt.
};

// Throws std::runtime_error if asmjit rejects a step (a table bug).
EncodedSequence encode(const Sequence& sequence, uint32_t origin);

struct FlagAnalysis {
  bool valid = true;                       // No instruction reads a flag left undefined.
  std::vector<uint32_t> undefined_before;  // Per record, then at the end.
};
FlagAnalysis analyze_flags(const Sequence& sequence);

class SequenceGenerator {
 public:
  SequenceGenerator(uint64_t seed, std::optional<FormClass> only);

  Sequence generate(int records);
  // Random GPRs, EFLAGS (arithmetic + DF), x87/SSE registers and memory.
  void randomize(CpuState& state, std::span<uint8_t> memory);

 private:
  Record instantiate(const InstructionForm& form);
  Record defining_compare();
  asmjit::Operand operand(Op kind, uint32_t size, int index, Record& r);
  asmjit::x86::Mem data_memory(uint32_t size, uint32_t align, bool allow_cs, Record& r);
  asmjit::x86::Gp gpr(uint32_t size);
  uint32_t imm(uint32_t size);
  uint32_t below(uint32_t n) { return static_cast<uint32_t>(rng_() % n); }
  bool chance(int percent) { return below(100) < static_cast<uint32_t>(percent); }
  void emit_inst(Record& r, asmjit::InstId id, std::initializer_list<asmjit::Operand> ops,
                 asmjit::InstOptions options = asmjit::InstOptions::kNone);

  std::mt19937_64 rng_;
  std::vector<const InstructionForm*> forms_;
};

}  // namespace bt86::difftest
