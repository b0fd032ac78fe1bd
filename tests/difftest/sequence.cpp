#include "tests/difftest/sequence.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

namespace bt86::difftest {
namespace {

namespace x86 = asmjit::x86;
using asmjit::InstId;
using asmjit::InstOptions;
namespace Inst = x86::Inst;

constexpr uint32_t CF = eflags::kCf, PF = eflags::kPf, AF = eflags::kAf, ZF = eflags::kZf,
                   SF = eflags::kSf, OF = eflags::kOf;
constexpr uint32_t ALL = eflags::kArith;

// Flags each condition code (x86 encoding order) reads.
constexpr uint32_t kConditionReads[16] = {OF,      OF,      CF,           CF,          ZF, ZF,
                                          CF | ZF, CF | ZF, SF,           SF,          PF, PF,
                                          SF | OF, SF | OF, ZF | SF | OF, ZF | SF | OF};

// Registers an instruction may write: never ESP (the stack stays in its
// area). Indices are asmjit register ids.
constexpr uint32_t kWritable[] = {0, 1, 2, 3, 5, 6, 7};
constexpr uint32_t kAddressRegs[] = {3, 5, 6, 7};  // ebx, ebp, esi, edi

x86::Gp gpd(uint32_t id) {
  return x86::gpd(id);
}

uint8_t segment_prefix(uint32_t seg_id) {
  constexpr uint8_t kPrefixes[] = {0, 0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65};
  return kPrefixes[seg_id];
}

}  // namespace

SequenceGenerator::SequenceGenerator(uint64_t seed, std::optional<FormClass> only) : rng_(seed) {
  for (const InstructionForm& f : instruction_forms()) {
    if (only.has_value() ? f.cls == *only : true) {
      // Faults end a sequence, so outside --only fault they stay rare.
      if (!only.has_value() && f.cls == FormClass::kFault) continue;
      forms_.push_back(&f);
    }
  }
}

void SequenceGenerator::emit_inst(Record& r, InstId id, std::initializer_list<asmjit::Operand> ops,
                                  InstOptions options) {
  Step s;
  s.id = id;
  s.options = options;
  for (const auto& op : ops) s.ops[s.op_count++] = op;
  r.steps.push_back(std::move(s));
}

x86::Gp SequenceGenerator::gpr(uint32_t size) {
  if (size == 1) {
    const uint32_t i = below(8);
    return i < 4 ? x86::Gp(x86::gpb_lo(i)) : x86::Gp(x86::gpb_hi(i - 4));
  }
  const uint32_t id = kWritable[below(std::size(kWritable))];
  return size == 2 ? x86::Gp(x86::gpw(id)) : x86::Gp(x86::gpd(id));
}

uint32_t SequenceGenerator::imm(uint32_t size) {
  uint32_t v;
  switch (below(8)) {
    case 0:
      v = 0;
      break;
    case 1:
      v = 1;
      break;
    case 2:
      v = 0xFFFFFFFF;
      break;
    case 3:
      v = 0x7FFFFFFF >> (32 - 8 * size);
      break;
    case 4:
      v = 0x80000000u >> (32 - 8 * size);
      break;
    default:
      v = static_cast<uint32_t>(rng_());
      break;
  }
  return size == 4 ? v : v & ((1u << (8 * size)) - 1);
}

x86::Mem SequenceGenerator::data_memory(uint32_t size, uint32_t align, bool allow_cs, Record& r) {
  uint32_t addr = kDataBase + below(kDataEnd - kDataBase - 16);
  if (align > 1 || chance(50)) addr &= ~(std::max(align, size) - 1);
  x86::Mem m;
  switch (below(3)) {
    case 0:
      m = x86::ptr(uint64_t{addr}, size);
      break;
    case 1: {
      const uint32_t base = kAddressRegs[below(4)];
      const int32_t disp = chance(50) ? static_cast<int8_t>(rng_()) : static_cast<int32_t>(rng_());
      emit_inst(r, Inst::kIdMov, {gpd(base), asmjit::Imm(addr - static_cast<uint32_t>(disp))});
      m = x86::ptr(gpd(base), disp, size);
      break;
    }
    default: {
      const uint32_t base = kAddressRegs[below(4)];
      uint32_t index = kWritable[below(std::size(kWritable))];
      if (index == base) index = base == 3 ? 6 : 3;
      const uint32_t shift = below(4);
      const uint32_t scaled = below(64);
      const int32_t disp = static_cast<int8_t>(rng_());
      emit_inst(r, Inst::kIdMov, {gpd(index), asmjit::Imm(scaled)});
      emit_inst(r, Inst::kIdMov,
                {gpd(base), asmjit::Imm(addr - (scaled << shift) - static_cast<uint32_t>(disp))});
      m = x86::ptr(gpd(base), gpd(index), shift, disp, size);
      break;
    }
  }
  if (chance(25)) {
    uint32_t seg = 1 + below(6);  // es cs ss ds fs gs
    if (seg == 2 && !allow_cs) seg = 4;
    m.setSegment(seg);
  }
  return m;
}

asmjit::Operand SequenceGenerator::operand(Op kind, uint32_t size, int index, Record& r) {
  const bool allow_cs = index > 0;
  switch (kind) {
    case Op::kRm:
      return chance(50) ? asmjit::Operand(gpr(size)) : data_memory(size, 1, allow_cs, r);
    case Op::kReg:
      return gpr(size);
    case Op::kMem:
      return data_memory(size, 1, allow_cs, r);
    case Op::kImm:
      return asmjit::Imm(static_cast<int64_t>(imm(size)));
    case Op::kImm8:
      return asmjit::Imm(imm(1));
    case Op::kOne:
      return asmjit::Imm(1);
    case Op::kCl:
      return x86::cl;
    case Op::kR32:
      return gpr(4);
    case Op::kR16:
      return gpr(2);
    case Op::kRm8:
      return chance(50) ? asmjit::Operand(gpr(1)) : data_memory(1, 1, allow_cs, r);
    case Op::kRm16:
      return chance(50) ? asmjit::Operand(gpr(2)) : data_memory(2, 1, allow_cs, r);
    case Op::kM64:
      return data_memory(8, 1, allow_cs, r);
    case Op::kMm:
      return x86::mm(below(8));
    case Op::kMmM64:
      return chance(50) ? asmjit::Operand(x86::mm(below(8))) : data_memory(8, 1, allow_cs, r);
    case Op::kXmm:
      return x86::xmm(below(8));
    case Op::kXmmM32:
      return chance(50) ? asmjit::Operand(x86::xmm(below(8))) : data_memory(4, 1, allow_cs, r);
    case Op::kXmmM64:
      return chance(50) ? asmjit::Operand(x86::xmm(below(8))) : data_memory(8, 1, allow_cs, r);
    case Op::kXmmM128:
      return chance(50) ? asmjit::Operand(x86::xmm(below(8))) : data_memory(16, 1, allow_cs, r);
    case Op::kXmmM128Aligned:
      return chance(50) ? asmjit::Operand(x86::xmm(below(8))) : data_memory(16, 16, allow_cs, r);
    case Op::kSt:
      return x86::st(below(8));
    case Op::kSt0:
      return x86::st0;
    case Op::kMF32:
      return x86::ptr(uint64_t{kFloat32Area + 4 * below(16)}, 4);
    case Op::kMF64:
      return x86::ptr(uint64_t{kFloat64Area + 8 * below(16)}, 8);
    case Op::kMI16:
      return x86::ptr(uint64_t{kScratchArea + 2 * below(64)}, 2);
    case Op::kMI32:
      return x86::ptr(uint64_t{kScratchArea + 4 * below(32)}, 4);
    case Op::kMSt32:
      return x86::ptr(uint64_t{kScratchArea + 4 * below(32)}, 4);
    case Op::kMSt64:
      return x86::ptr(uint64_t{kScratchArea + 8 * below(16)}, 8);
    case Op::kAx:
      return x86::ax;
    case Op::kNone:
      break;
  }
  throw std::logic_error("operand kind without a value");
}

Record SequenceGenerator::defining_compare() {
  Record r;
  r.defines = ALL;
  emit_inst(r, Inst::kIdCmp, {gpr(4), gpr(4)});
  return r;
}

Record SequenceGenerator::instantiate(const InstructionForm& f) {
  Record r;
  r.form = &f;
  r.reads = f.reads;
  r.defines = f.defines;
  r.undefs = f.undefs;
  uint32_t size = 4;
  if (f.sizes != 0) {
    do size = 1u << below(3);
    while ((f.sizes & size) == 0);
  }
  const uint32_t bits = size * 8;

  auto plain = [&](InstOptions options = InstOptions::kNone) {
    Step s;
    s.id = f.id;
    s.options = options;
    for (int i = 0; i < 3 && f.ops[i] != Op::kNone; ++i)
      s.ops[s.op_count++] = operand(f.ops[i], size, i, r);
    return s;
  };
  auto shift_count = [&]() -> uint32_t {
    switch (below(5)) {
      case 0:
        return 0;
      case 1:
        return 1;
      case 2:
        return 2 + below(bits - 2);
      case 3:
        return bits + below(32 - bits + 1);
      default:
        return below(256);
    }
  };

  switch (f.special) {
    case Special::kNone:
      r.steps.push_back(plain());
      break;
    case Special::kLockable: {
      Step s = plain();
      if (s.ops[0].isMem() && chance(40)) s.options |= InstOptions::kX86_Lock;
      r.steps.push_back(std::move(s));
      break;
    }
    case Special::kShift:
    case Special::kRotate:
    case Special::kRotateCarry:
    case Special::kShiftDouble: {
      uint32_t count = f.ops[1] == Op::kOne ? 1 : shift_count();
      const int count_op = f.special == Special::kShiftDouble ? 2 : 1;
      if (f.special == Special::kShiftDouble && size == 2 && (count & 31) > 16) count = 16;
      if (f.ops[count_op] == Op::kCl) emit_inst(r, Inst::kIdMov, {x86::cl, asmjit::Imm(count)});
      Step s = plain();
      if (f.ops[count_op] == Op::kImm8) s.ops[count_op] = asmjit::Imm(count);
      r.steps.push_back(std::move(s));
      const uint32_t masked = count & 31;
      r.defines = r.undefs = 0;
      if (masked == 0) break;
      const uint32_t of_rule = masked == 1 ? OF : 0;
      if (f.special == Special::kShift || f.special == Special::kShiftDouble) {
        r.defines = CF | SF | ZF | PF | of_rule;
        r.undefs = AF | (OF & ~of_rule);
        const bool logical = f.id == Inst::kIdShl || f.id == Inst::kIdShr;
        if (logical && masked >= bits) {
          r.defines &= ~CF;
          r.undefs |= CF;
        }
      } else {
        uint32_t effective = masked;
        if (f.special == Special::kRotateCarry && size < 4) effective = masked % (bits + 1);
        r.defines = (effective != 0 || f.special == Special::kRotate ? CF : 0) | of_rule;
        r.undefs = OF & ~of_rule;
      }
      break;
    }
    case Special::kDivide: {
      if (chance(75)) {
        const bool is_signed = f.id == Inst::kIdIdiv;
        if (size == 1) {
          if (is_signed)
            emit_inst(r, Inst::kIdCbw, {});
          else
            emit_inst(r, Inst::kIdMov, {x86::ah, asmjit::Imm(0)});
        } else if (is_signed) {
          emit_inst(r, size == 2 ? Inst::kIdCwd : Inst::kIdCdq, {});
        } else {
          emit_inst(r, Inst::kIdMov,
                    {size == 2 ? x86::Gp(x86::dx) : x86::Gp(x86::edx), asmjit::Imm(0)});
        }
      }
      r.steps.push_back(plain());
      break;
    }
    case Special::kJcc: {
      const uint32_t cc = below(16);
      r.reads = kConditionReads[cc];
      r.skip = 1 + static_cast<int>(below(3));
      Step s;
      s.kind = Step::Kind::kJumpForward;
      s.id = Inst::jccFromCond(static_cast<x86::CondCode>(cc));
      s.target = r.skip;
      r.steps.push_back(std::move(s));
      break;
    }
    case Special::kSetcc:
    case Special::kCmovcc: {
      const uint32_t cc = below(16);
      r.reads = kConditionReads[cc];
      Step s = plain();
      s.id = f.special == Special::kSetcc ? Inst::setccFromCond(static_cast<x86::CondCode>(cc))
                                          : Inst::cmovccFromCond(static_cast<x86::CondCode>(cc));
      r.steps.push_back(std::move(s));
      break;
    }
    case Special::kJmpForward:
    case Special::kJecxz: {
      r.skip = 1 + static_cast<int>(below(2));
      if (f.special == Special::kJecxz && chance(40)) {
        emit_inst(r, Inst::kIdMov, {x86::ecx, asmjit::Imm(0)});
      }
      Step s;
      s.kind = Step::Kind::kJumpForward;
      s.id = f.id;
      s.target = r.skip;
      r.steps.push_back(std::move(s));
      break;
    }
    case Special::kLoop: {
      emit_inst(r, Inst::kIdMov, {x86::ecx, asmjit::Imm(1 + below(5))});
      Step bind;
      bind.kind = Step::Kind::kBindLocal;
      r.steps.push_back(bind);
      uint32_t body = kWritable[below(std::size(kWritable))];
      if (body == 1) body = 0;
      emit_inst(r, chance(50) ? Inst::kIdAdd : Inst::kIdSub, {gpd(body), asmjit::Imm(imm(1) & 3)});
      Step loop;
      loop.kind = Step::Kind::kJumpLocal;
      loop.id = f.id;
      r.steps.push_back(std::move(loop));
      r.defines = ALL;
      break;
    }
    case Special::kCallRet: {
      Step call;
      call.kind = Step::Kind::kJumpLocal;
      call.id = Inst::kIdCall;
      call.target = 0;
      r.steps.push_back(call);
      Step over;
      over.kind = Step::Kind::kJumpLocal;
      over.id = Inst::kIdJmp;
      over.target = 1;
      r.steps.push_back(over);
      Step bind0;
      bind0.kind = Step::Kind::kBindLocal;
      bind0.target = 0;
      r.steps.push_back(bind0);
      if (chance(50))
        emit_inst(r, Inst::kIdRet, {});
      else
        emit_inst(r, Inst::kIdRet, {asmjit::Imm(4 * below(4))});
      Step bind1;
      bind1.kind = Step::Kind::kBindLocal;
      bind1.target = 1;
      r.steps.push_back(bind1);
      break;
    }
    case Special::kEnterLeave:
      emit_inst(r, Inst::kIdMov, {x86::ebp, asmjit::Imm(kStackBottom + 0x400 + 4 * below(256))});
      emit_inst(r, Inst::kIdEnter, {asmjit::Imm(4 * below(16)), asmjit::Imm(below(4))});
      emit_inst(r, Inst::kIdLeave, {});
      break;
    case Special::kPopf: {
      const uint32_t flags =
          eflags::kFixed1 | eflags::kIf | (static_cast<uint32_t>(rng_()) & (ALL | eflags::kDf));
      emit_inst(r, Inst::kIdPush, {asmjit::Imm(flags)});
      emit_inst(r, Inst::kIdPopfd, {});
      break;
    }
    case Special::kString: {
      // movs stos lods cmps scas, byte form opcodes (word/dword = +1).
      constexpr uint8_t kOpcodes[] = {0xA4, 0xAA, 0xAC, 0xA6, 0xAE};
      const bool backwards = chance(50);
      // A long run covers more bytes than its pointers' distance from 0, so
      // the translation reads DF to tell whether its elements could wrap
      // (they do not: forwards they reach the read-only or no-access page,
      // and backwards only lods runs, down to the absent page 0, because
      // stores there would overwrite the sequence's own code).
      const bool long_run = chance(12);
      const uint32_t op = long_run && backwards ? 2 : below(5);
      const bool compares = op >= 3;
      const bool reads_source = op == 0 || op == 2 || op == 3;
      emit_inst(r, backwards ? Inst::kIdStd : Inst::kIdCld, {});
      const uint32_t count = long_run ? 0x4000 + below(0x4000) : below(17);
      emit_inst(r, Inst::kIdMov, {x86::esi, asmjit::Imm(0x9000 + below(0x1000))});
      emit_inst(r, Inst::kIdMov, {x86::edi, asmjit::Imm(0xA000 + below(0x800))});
      emit_inst(r, Inst::kIdMov, {x86::ecx, asmjit::Imm(count)});
      Step s;
      s.kind = Step::Kind::kRaw;
      if (size == 2) s.raw.push_back(0x66);
      uint32_t prefix = below(3);  // none, rep/repe, repne
      if (!compares && prefix == 2) prefix = 1;
      if (long_run && prefix == 0) prefix = 1;
      if (prefix == 1) s.raw.push_back(0xF3);
      if (prefix == 2) s.raw.push_back(0xF2);
      if (reads_source && chance(25)) s.raw.push_back(segment_prefix(1 + below(6)));
      s.raw.push_back(static_cast<uint8_t>(kOpcodes[op] + (size == 1 ? 0 : 1)));
      r.steps.push_back(std::move(s));
      r.defines = compares && (prefix == 0 || count > 0) ? ALL : 0;
      break;
    }
    case Special::kFldcw: {
      const uint32_t pc = std::array<uint32_t, 3>{0, 2, 3}[below(3)];
      const uint32_t cw = 0x7F | (pc << 8) | (below(4) << 10);
      const auto m = x86::ptr(uint64_t{kScratchArea + 0xF0}, 2);
      emit_inst(r, Inst::kIdMov, {m, asmjit::Imm(cw)});
      emit_inst(r, Inst::kIdFldcw, {m});
      break;
    }
    case Special::kRawBytes: {
      Step s;
      s.kind = Step::Kind::kRaw;
      s.raw.assign(f.raw.begin(), f.raw.end());
      r.steps.push_back(std::move(s));
      break;
    }
    case Special::kDivideByZero:
      emit_inst(r, Inst::kIdMov, {x86::ebx, asmjit::Imm(0)});
      emit_inst(r, Inst::kIdDiv, {x86::ebx});
      break;
    case Special::kDivideOverflow:
      emit_inst(r, Inst::kIdMov, {x86::eax, asmjit::Imm(0x80000000u)});
      emit_inst(r, Inst::kIdCdq, {});
      emit_inst(r, Inst::kIdMov, {x86::ebx, asmjit::Imm(0xFFFFFFFFu)});
      emit_inst(r, Inst::kIdIdiv, {x86::ebx});
      break;
    case Special::kAccessOutside: {
      constexpr uint32_t kOutside[] = {kMemorySize, kMemorySize + 0x1234, 0x00800000,
                                       0x80000000u, 0xFFFFF000u,          0xFFFFFFFCu};
      const auto m = x86::ptr(uint64_t{kOutside[below(std::size(kOutside))]}, 4);
      if (chance(50))
        emit_inst(r, Inst::kIdMov, {m, x86::eax});
      else
        emit_inst(r, Inst::kIdMov, {x86::eax, m});
      break;
    }
    case Special::kWriteReadOnly: {
      const auto m = x86::ptr(uint64_t{kReadOnlyPage + 4 * below(1024)}, 4);
      emit_inst(r, chance(50) ? Inst::kIdMov : Inst::kIdAdd, {m, x86::eax});
      r.defines = ALL;
      break;
    }
    case Special::kReadNoAccess:
      emit_inst(r, Inst::kIdMov,
                {x86::eax, x86::ptr(uint64_t{kNoAccessPage + 4 * below(1024)}, 4)});
      break;
    case Special::kMisalignedSse:
      emit_inst(
          r, Inst::kIdMovaps,
          {x86::xmm(below(8)), x86::ptr(uint64_t{kDataBase + 16 * below(64) + 1 + below(15)}, 16)});
      break;
  }
  return r;
}

Sequence SequenceGenerator::generate(int records) {
  Sequence seq;
  const bool with_faults = forms_.front()->cls != FormClass::kFault;
  while (static_cast<int>(seq.records.size()) < records) {
    const InstructionForm* f = forms_[below(forms_.size())];
    // One sequence in ten (outside --only fault) ends in a fault record.
    if (with_faults && static_cast<int>(seq.records.size()) == records - 1 && chance(10)) {
      const auto all = instruction_forms();
      std::vector<const InstructionForm*> faults;
      for (const auto& g : all)
        if (g.cls == FormClass::kFault) faults.push_back(&g);
      f = faults[below(faults.size())];
    }
    Record r = instantiate(*f);
    seq.records.push_back(std::move(r));
    if (!analyze_flags(seq).valid) {
      seq.records.insert(seq.records.end() - 1, defining_compare());
      // A jump over the compare still brings the undefined flags: pick
      // another form.
      if (!analyze_flags(seq).valid) seq.records.resize(seq.records.size() - 2);
    }
  }
  return seq;
}

void SequenceGenerator::randomize(CpuState& s, std::span<uint8_t> memory) {
  for (int i = 0; i < kNumGprs; ++i) s.gpr[i] = imm(4);
  s.reg(Gpr::kEsp) = kStackTop - 4 * below(64);
  s.eflags = eflags::kFixed1 | eflags::kIf | (static_cast<uint32_t>(rng_()) & (ALL | eflags::kDf));
  s.fpu = FpuState::reset_state();
  auto& fx = s.fpu.fxsave;
  const uint32_t depth = below(9);  // x87 registers in use.
  const uint16_t fsw = static_cast<uint16_t>(((8 - depth) & 7) << 11);
  std::memcpy(&fx[2], &fsw, 2);
  uint8_t tags = 0;
  // Abridged tags are by physical register; ST(i) is physical (TOP+i)&7.
  for (uint32_t i = 0; i < depth; ++i) tags |= static_cast<uint8_t>(1u << ((8 - depth + i) & 7));
  fx[4] = tags;
  for (int i = 0; i < 8; ++i) {
    const long double v = static_cast<long double>(static_cast<int32_t>(rng_())) /
                          static_cast<long double>(1 + below(1000));
    std::memcpy(&fx[32 + 16 * i], &v, 10);
  }
  if (chance(20)) {
    const uint32_t mxcsr = 0x1F80 | (below(4) << 13);
    std::memcpy(&fx[24], &mxcsr, 4);
  }
  for (int i = 0; i < 8; ++i) {
    for (int lane = 0; lane < 4; ++lane) {
      uint32_t v = static_cast<uint32_t>(rng_());
      if (chance(60)) {
        const float f = static_cast<float>(static_cast<int32_t>(v)) / 1024.0f;
        std::memcpy(&v, &f, 4);
      }
      std::memcpy(&fx[160 + 16 * i + 4 * lane], &v, 4);
    }
  }

  std::fill(memory.begin(), memory.end(), 0);
  std::fill(memory.begin() + kCodeBase, memory.begin() + kCodeEnd, 0xF4);
  for (uint32_t a = kDataBase; a < kDataEnd; a += 8) {
    const uint64_t v = rng_();
    std::memcpy(&memory[a], &v, 8);
  }
  for (uint32_t i = 0; i < 16; ++i) {
    const float f = static_cast<float>(static_cast<int32_t>(rng_() % 2000001) - 1000000) / 64.0f;
    std::memcpy(&memory[kFloat32Area + 4 * i], &f, 4);
    const double d = static_cast<double>(static_cast<int64_t>(rng_() % 2000000001) - 1000000000) /
                     (1.0 + below(4096));
    std::memcpy(&memory[kFloat64Area + 8 * i], &d, 8);
  }
  for (uint32_t a = kScratchArea; a < kScratchArea + 0x100; a += 4) {
    const uint32_t v = static_cast<uint32_t>(rng_() % 100000);
    std::memcpy(&memory[a], &v, 4);
  }
  for (uint32_t a = kReadOnlyPage; a < kReadOnlyPage + 0x1000; a += 8) {
    const uint64_t v = rng_();
    std::memcpy(&memory[a], &v, 8);
  }
  for (uint32_t a = kStackBottom; a < kMemorySize; a += 8) {
    const uint64_t v = rng_();
    std::memcpy(&memory[a], &v, 8);
  }
}

FlagAnalysis analyze_flags(const Sequence& seq) {
  FlagAnalysis a;
  const size_t n = seq.records.size();
  a.undefined_before.assign(n + 1, 0);
  std::vector<uint32_t> pending(n + 1, 0);
  uint32_t current = 0;
  for (size_t i = 0; i < n; ++i) {
    const Record& r = seq.records[i];
    current |= pending[i];
    a.undefined_before[i] = current;
    if ((r.reads & current) != 0) a.valid = false;
    const uint32_t after = (current & ~r.defines) | r.undefs;
    if (r.skip >= 0) {
      const size_t target = std::min(n, i + 1 + static_cast<size_t>(r.skip));
      pending[target] |= after;
    }
    current = after;
  }
  a.undefined_before[n] = current | pending[n];
  return a;
}

EncodedSequence encode(const Sequence& seq, uint32_t origin) {
  asmjit::Environment env(asmjit::Arch::kX86);
  asmjit::CodeHolder code;
  code.init(env, origin);
  x86::Assembler as(&code);
  const size_t n = seq.records.size();
  std::vector<asmjit::Label> starts(n + 1);
  for (auto& l : starts) l = as.newLabel();
  EncodedSequence out;
  auto check = [&](asmjit::Error err, size_t record) {
    if (err != asmjit::kErrorOk) {
      throw std::runtime_error(
          fmt::format("asmjit cannot encode record {} ({}): {}", record,
                      seq.records[record].form != nullptr ? seq.records[record].form->name : "cmp",
                      asmjit::DebugUtils::errorAsString(err)));
    }
  };
  for (size_t i = 0; i < n; ++i) {
    as.bind(starts[i]);
    out.record_offsets.push_back(static_cast<uint32_t>(as.offset()));
    asmjit::Label local[2] = {as.newLabel(), as.newLabel()};
    for (const Step& s : seq.records[i].steps) {
      switch (s.kind) {
        case Step::Kind::kInst:
          as.addInstOptions(s.options);
          check(as.emit(s.id, s.ops[0], s.ops[1], s.ops[2]), i);
          break;
        case Step::Kind::kRaw:
          check(as.embed(s.raw.data(), s.raw.size()), i);
          break;
        case Step::Kind::kJumpForward: {
          const asmjit::Label& to = starts[std::min(n, i + 1 + static_cast<size_t>(s.target))];
          if (s.id == Inst::kIdJecxz)
            check(as.emit(s.id, x86::ecx, to), i);
          else
            check(as.emit(s.id, to), i);
          break;
        }
        case Step::Kind::kBindLocal:
          check(as.bind(local[s.target]), i);
          break;
        case Step::Kind::kJumpLocal:
          if (s.id == Inst::kIdLoop || s.id == Inst::kIdLoope || s.id == Inst::kIdLoopne) {
            check(as.emit(s.id, x86::ecx, local[s.target]), i);
          } else {
            check(as.emit(s.id, local[s.target]), i);
          }
          break;
      }
    }
  }
  as.bind(starts[n]);
  out.record_offsets.push_back(static_cast<uint32_t>(as.offset()));
  as.hlt();
  code.flatten();
  code.resolveUnresolvedLinks();
  const asmjit::CodeBuffer& buf = code.textSection()->buffer();
  out.bytes.assign(buf.data(), buf.data() + buf.size());
  return out;
}

}  // namespace bt86::difftest
