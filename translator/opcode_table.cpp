#include "translator/opcode_table.h"

#include <array>

namespace bt86 {
namespace {

using K = TranslationKind;
using E = Emitter;
using C = CalloutId;

constexpr OpcodeEntry kTable[] = {
    // Re-encoded in place (one-byte inc/dec are REX prefixes in 64-bit mode).
    {ZYDIS_MNEMONIC_INC, K::kIdent, E::kIdent},
    {ZYDIS_MNEMONIC_DEC, K::kIdent, E::kIdent},
    {ZYDIS_MNEMONIC_RDTSC, K::kIdent, E::kIdent},
    // Control flow.
    {ZYDIS_MNEMONIC_JMP, K::kCompensated, E::kJmpRelative},
    {ZYDIS_MNEMONIC_JB, K::kCompensated, E::kJcc},
    {ZYDIS_MNEMONIC_JBE, K::kCompensated, E::kJcc},
    {ZYDIS_MNEMONIC_JL, K::kCompensated, E::kJcc},
    {ZYDIS_MNEMONIC_JLE, K::kCompensated, E::kJcc},
    {ZYDIS_MNEMONIC_JNB, K::kCompensated, E::kJcc},
    {ZYDIS_MNEMONIC_JNBE, K::kCompensated, E::kJcc},
    {ZYDIS_MNEMONIC_JNL, K::kCompensated, E::kJcc},
    {ZYDIS_MNEMONIC_JNLE, K::kCompensated, E::kJcc},
    {ZYDIS_MNEMONIC_JNO, K::kCompensated, E::kJcc},
    {ZYDIS_MNEMONIC_JNP, K::kCompensated, E::kJcc},
    {ZYDIS_MNEMONIC_JNS, K::kCompensated, E::kJcc},
    {ZYDIS_MNEMONIC_JNZ, K::kCompensated, E::kJcc},
    {ZYDIS_MNEMONIC_JO, K::kCompensated, E::kJcc},
    {ZYDIS_MNEMONIC_JP, K::kCompensated, E::kJcc},
    {ZYDIS_MNEMONIC_JS, K::kCompensated, E::kJcc},
    {ZYDIS_MNEMONIC_JZ, K::kCompensated, E::kJcc},
    {ZYDIS_MNEMONIC_JCXZ, K::kCompensated, E::kCounterBranch},
    {ZYDIS_MNEMONIC_JECXZ, K::kCompensated, E::kCounterBranch},
    {ZYDIS_MNEMONIC_LOOP, K::kCompensated, E::kCounterBranch},
    {ZYDIS_MNEMONIC_LOOPE, K::kCompensated, E::kCounterBranch},
    {ZYDIS_MNEMONIC_LOOPNE, K::kCompensated, E::kCounterBranch},
    {ZYDIS_MNEMONIC_CALL, K::kCompensated, E::kCallRelative},
    {ZYDIS_MNEMONIC_RET, K::kCompensated, E::kRet},
    // Stack.
    {ZYDIS_MNEMONIC_PUSH, K::kCompensated, E::kPush},
    {ZYDIS_MNEMONIC_POP, K::kCompensated, E::kPop},
    {ZYDIS_MNEMONIC_PUSHFD, K::kCompensated, E::kPushf},
    {ZYDIS_MNEMONIC_PUSHF, K::kCompensated, E::kPushf},
    {ZYDIS_MNEMONIC_POPFD, K::kCompensated, E::kPopf},
    {ZYDIS_MNEMONIC_POPF, K::kCompensated, E::kPopf},
    {ZYDIS_MNEMONIC_ENTER, K::kCompensated, E::kEnter},
    {ZYDIS_MNEMONIC_LEAVE, K::kCompensated, E::kLeave},
    // Virtual interrupt flag.
    {ZYDIS_MNEMONIC_CLI, K::kCompensated, E::kCli},
    {ZYDIS_MNEMONIC_STI, K::kCompensated, E::kSti},
    // Traps and faults raised directly by the translation.
    {ZYDIS_MNEMONIC_INT3, K::kCompensated, E::kBreakpoint},
    {ZYDIS_MNEMONIC_UD0, K::kCompensated, E::kUndefined},
    {ZYDIS_MNEMONIC_UD1, K::kCompensated, E::kUndefined},
    {ZYDIS_MNEMONIC_UD2, K::kCompensated, E::kUndefined},
    // Callouts: rare, privileged, or invalid in 64-bit mode.
    {ZYDIS_MNEMONIC_HLT, K::kCallout, E::kCallout, C::kHalt},
    {ZYDIS_MNEMONIC_CPUID, K::kCallout, E::kCallout, C::kCpuid},
    {ZYDIS_MNEMONIC_PUSHAD, K::kCompensated, E::kPushAll, C::kPusha},
    {ZYDIS_MNEMONIC_PUSHA, K::kCompensated, E::kPushAll, C::kPusha},
    {ZYDIS_MNEMONIC_POPAD, K::kCompensated, E::kPopAll, C::kPopa},
    {ZYDIS_MNEMONIC_POPA, K::kCompensated, E::kPopAll, C::kPopa},
    {ZYDIS_MNEMONIC_DAA, K::kCallout, E::kCallout, C::kDecimalAdjust},
    {ZYDIS_MNEMONIC_DAS, K::kCallout, E::kCallout, C::kDecimalAdjust},
    {ZYDIS_MNEMONIC_AAA, K::kCallout, E::kCallout, C::kDecimalAdjust},
    {ZYDIS_MNEMONIC_AAS, K::kCallout, E::kCallout, C::kDecimalAdjust},
    {ZYDIS_MNEMONIC_AAM, K::kCallout, E::kCallout, C::kDecimalAdjust},
    {ZYDIS_MNEMONIC_AAD, K::kCallout, E::kCallout, C::kDecimalAdjust},
    {ZYDIS_MNEMONIC_INTO, K::kCallout, E::kCallout, C::kInto},
    {ZYDIS_MNEMONIC_BOUND, K::kCallout, E::kCallout, C::kBound},
    {ZYDIS_MNEMONIC_SALC, K::kCallout, E::kCallout, C::kSalc},
    {ZYDIS_MNEMONIC_INT, K::kCallout, E::kCallout, C::kSoftwareInterrupt},
    {ZYDIS_MNEMONIC_INT1, K::kCallout, E::kCallout, C::kSystem},
    {ZYDIS_MNEMONIC_IRETD, K::kCompensated, E::kIret, C::kSystem},
    {ZYDIS_MNEMONIC_IRET, K::kCallout, E::kCallout, C::kSystem},
    {ZYDIS_MNEMONIC_LES, K::kCallout, E::kCallout, C::kSystem},
    {ZYDIS_MNEMONIC_LDS, K::kCallout, E::kCallout, C::kSystem},
    {ZYDIS_MNEMONIC_LSS, K::kCallout, E::kCallout, C::kSystem},
    {ZYDIS_MNEMONIC_LFS, K::kCallout, E::kCallout, C::kSystem},
    {ZYDIS_MNEMONIC_LGS, K::kCallout, E::kCallout, C::kSystem},
    {ZYDIS_MNEMONIC_ARPL, K::kCallout, E::kCallout, C::kSystem},
    {ZYDIS_MNEMONIC_LAR, K::kCallout, E::kCallout, C::kSystem},
    {ZYDIS_MNEMONIC_LSL, K::kCallout, E::kCallout, C::kSystem},
    {ZYDIS_MNEMONIC_VERR, K::kCallout, E::kCallout, C::kSystem},
    {ZYDIS_MNEMONIC_VERW, K::kCompensated, E::kVerw, C::kSystem},
    {ZYDIS_MNEMONIC_SGDT, K::kCallout, E::kCallout, C::kSystem},
    {ZYDIS_MNEMONIC_SIDT, K::kCallout, E::kCallout, C::kSystem},
    {ZYDIS_MNEMONIC_SLDT, K::kCallout, E::kCallout, C::kSystem},
    {ZYDIS_MNEMONIC_STR, K::kCallout, E::kCallout, C::kSystem},
    {ZYDIS_MNEMONIC_SMSW, K::kCallout, E::kCallout, C::kSystem},
    {ZYDIS_MNEMONIC_LGDT, K::kCallout, E::kCallout, C::kSystem},
    {ZYDIS_MNEMONIC_LIDT, K::kCallout, E::kCallout, C::kSystem},
    {ZYDIS_MNEMONIC_LLDT, K::kCallout, E::kCallout, C::kSystem},
    {ZYDIS_MNEMONIC_LTR, K::kCallout, E::kCallout, C::kSystem},
    {ZYDIS_MNEMONIC_LMSW, K::kCallout, E::kCallout, C::kSystem},
    {ZYDIS_MNEMONIC_CLTS, K::kCallout, E::kCallout, C::kSystem},
    {ZYDIS_MNEMONIC_INVLPG, K::kCallout, E::kCallout, C::kSystem},
    {ZYDIS_MNEMONIC_WBINVD, K::kCallout, E::kCallout, C::kSystem},
    {ZYDIS_MNEMONIC_INVD, K::kCallout, E::kCallout, C::kSystem},
    {ZYDIS_MNEMONIC_RDMSR, K::kCallout, E::kCallout, C::kSystem},
    {ZYDIS_MNEMONIC_WRMSR, K::kCallout, E::kCallout, C::kSystem},
    {ZYDIS_MNEMONIC_RDPMC, K::kCallout, E::kCallout, C::kSystem},
    {ZYDIS_MNEMONIC_IN, K::kCallout, E::kCallout, C::kSystem},
    {ZYDIS_MNEMONIC_OUT, K::kCallout, E::kCallout, C::kSystem},
    {ZYDIS_MNEMONIC_SYSENTER, K::kCallout, E::kCallout, C::kSystem},
    {ZYDIS_MNEMONIC_SYSEXIT, K::kCallout, E::kCallout, C::kSystem},
    {ZYDIS_MNEMONIC_SYSCALL, K::kCallout, E::kCallout, C::kSystem},
    {ZYDIS_MNEMONIC_MONITOR, K::kCallout, E::kCallout, C::kSystem},
    {ZYDIS_MNEMONIC_MWAIT, K::kCallout, E::kCallout, C::kSystem},
    {ZYDIS_MNEMONIC_RSM, K::kCallout, E::kCallout, C::kSystem},
};

bool is_segment_register(ZydisRegister r) {
  return r >= ZYDIS_REGISTER_ES && r <= ZYDIS_REGISTER_GS;
}

bool is_system_register(ZydisRegister r) {
  return (r >= ZYDIS_REGISTER_CR0 && r <= ZYDIS_REGISTER_CR15) ||
         (r >= ZYDIS_REGISTER_DR0 && r <= ZYDIS_REGISTER_DR15) ||
         (r >= ZYDIS_REGISTER_TR0 && r <= ZYDIS_REGISTER_TR7);
}

const std::array<int16_t, ZYDIS_MNEMONIC_MAX_VALUE + 1>& table_index() {
  static const auto index = [] {
    std::array<int16_t, ZYDIS_MNEMONIC_MAX_VALUE + 1> idx;
    idx.fill(-1);
    for (size_t i = 0; i < std::size(kTable); ++i)
      idx[kTable[i].mnemonic] = static_cast<int16_t>(i);
    return idx;
  }();
  return index;
}

OpcodeEntry callout(ZydisMnemonic m, CalloutId id) {
  return {m, K::kCallout, E::kCallout, id};
}

}  // namespace

std::span<const OpcodeEntry> opcode_table() {
  return kTable;
}

const char* translation_kind_name(TranslationKind kind) {
  switch (kind) {
    case K::kIdent:
      return "IDENT";
    case K::kCompensated:
      return "compensated";
    case K::kCallout:
      return "callout";
  }
  return "?";
}

OpcodeEntry classify(const DecodedInstruction& d) {
  const ZydisMnemonic m = d.mnemonic();
  const auto& insn = d.insn;
  if (insn.meta.branch_type == ZYDIS_BRANCH_TYPE_FAR) return callout(m, C::kSystem);
  if (insn.encoding == ZYDIS_INSTRUCTION_ENCODING_EVEX ||
      insn.encoding == ZYDIS_INSTRUCTION_ENCODING_MVEX ||
      insn.encoding == ZYDIS_INSTRUCTION_ENCODING_XOP ||
      insn.encoding == ZYDIS_INSTRUCTION_ENCODING_3DNOW) {
    return callout(m, C::kUnsupported);
  }
  for (int i = 0; i < insn.operand_count; ++i) {
    const auto& op = d.operands[i];
    if (op.type != ZYDIS_OPERAND_TYPE_REGISTER) continue;
    if (is_system_register(op.reg.value)) return callout(m, C::kSystem);
    if (is_segment_register(op.reg.value) && op.visibility != ZYDIS_OPERAND_VISIBILITY_HIDDEN) {
      const bool reads_segment = (op.actions & ZYDIS_OPERAND_ACTION_MASK_READ) != 0;
      if (m == ZYDIS_MNEMONIC_PUSH) return {m, K::kCompensated, E::kPushSegment};
      if (m == ZYDIS_MNEMONIC_MOV && reads_segment)
        return {m, K::kCompensated, E::kMoveFromSegment};
      // mov/pop SS keep the callout: they also open an interrupt shadow.
      if ((m == ZYDIS_MNEMONIC_MOV || m == ZYDIS_MNEMONIC_POP) &&
          op.reg.value != ZYDIS_REGISTER_SS && op.reg.value != ZYDIS_REGISTER_CS) {
        return {m, K::kCompensated, E::kLoadSegment, C::kSystem};
      }
      return callout(m, C::kSystem);  // Other segment loads.
    }
  }
  if (insn.meta.category == ZYDIS_CATEGORY_STRINGOP) {
    return {m, K::kCompensated, E::kString};
  }
  if (m == ZYDIS_MNEMONIC_ENTER && (insn.raw.imm[1].value.u & 0x1F) != 0) {
    return callout(m, C::kEnterNested);
  }
  int16_t i = table_index()[m];
  if (i >= 0) {
    OpcodeEntry e = kTable[i];
    if (m == ZYDIS_MNEMONIC_JMP && d.operands[0].type != ZYDIS_OPERAND_TYPE_IMMEDIATE) {
      e.emitter = E::kJmpIndirect;
    } else if (m == ZYDIS_MNEMONIC_CALL && d.operands[0].type != ZYDIS_OPERAND_TYPE_IMMEDIATE) {
      e.emitter = E::kCallIndirect;
    }
    return e;
  }
  if (insn.meta.branch_type != ZYDIS_BRANCH_TYPE_NONE ||
      d.has_attribute(ZYDIS_ATTRIB_IS_PRIVILEGED)) {
    return callout(m, C::kSystem);
  }
  switch (insn.meta.category) {
    case ZYDIS_CATEGORY_SYSTEM:
    case ZYDIS_CATEGORY_IO:
    case ZYDIS_CATEGORY_IOSTRINGOP:
    case ZYDIS_CATEGORY_INTERRUPT:
    case ZYDIS_CATEGORY_SYSCALL:
    case ZYDIS_CATEGORY_SYSRET:
    case ZYDIS_CATEGORY_SEGOP:
    case ZYDIS_CATEGORY_RDWRFSGS:
    case ZYDIS_CATEGORY_CET:
    case ZYDIS_CATEGORY_SGX:
    case ZYDIS_CATEGORY_VTX:
    case ZYDIS_CATEGORY_PT:
    case ZYDIS_CATEGORY_UINTR:
    case ZYDIS_CATEGORY_TSX_LDTRK:
      return callout(m, C::kSystem);
    default:
      break;
  }
  if (m == ZYDIS_MNEMONIC_XBEGIN || m == ZYDIS_MNEMONIC_XABORT || m == ZYDIS_MNEMONIC_XEND ||
      m == ZYDIS_MNEMONIC_XTEST) {
    return callout(m, C::kUnsupported);
  }
  return {m, K::kIdent, E::kIdent};
}

}  // namespace bt86
