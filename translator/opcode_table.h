// The opcode table: how every guest instruction is translated, as data.
//
// Each entry names a mnemonic, its translation kind (IDENT, compensated,
// callout) and the emitter (or, for callouts, the runtime function) that
// handles it. Mnemonics without an entry are IDENT unless Zydis marks them
// privileged or as system/I/O/interrupt/branch instructions, which become the
// "unsupported" callout: nothing reaches the host CPU untranslated that could
// behave differently there. classify() refines by operand form (segment and
// control register moves, nested enter, 16-bit addressing, far branches).
// Which guest flags an instruction reads and writes comes from Zydis
// (insn.cpu_flags), so the table does not repeat it.
#pragma once

#include <span>

#include "translator/guest_decoder.h"

namespace bt86 {

enum class TranslationKind : uint8_t { kIdent, kCompensated, kCallout };

enum class Emitter : uint8_t {
  kIdent,
  kJmpRelative,
  kJcc,
  kCounterBranch,  // jecxz, loop, loope, loopne.
  kCallRelative,
  kRet,
  kJmpIndirect,
  kCallIndirect,
  kPush,
  kPushSegment,      // push sreg: the selector from VcpuContext::selectors.
  kMoveFromSegment,  // mov r/m, sreg: likewise.
  kLoadSegment,      // mov/pop DS/ES/FS/GS: a callout unless no-op or prepared by the runtime.
  kVerw,             // verw r/m16: a callout unless the selector is the runtime's checked one.
  kPop,
  kPushAll,  // pusha/pushad: eight stores on a flat stack, else the kPusha callout.
  kPopAll,   // popa/popad: likewise, else kPopa.
  kPushf,
  kPopf,
  kEnter,
  kLeave,
  kCli,
  kSti,
  kString,
  kIret,        // iretd: in the cache back to the same CS at CPL 0, else the callout.
  kBreakpoint,  // int3: #BP after the instruction.
  kUndefined,   // ud0/ud1/ud2: #UD at the instruction.
  kCallout,
};

// Runtime functions behind callouts (runtime/callouts.h implements them).
enum class CalloutId : uint8_t {
  kNone,
  kHalt,
  kCpuid,
  kPusha,
  kPopa,
  kDecimalAdjust,  // daa das aaa aas aam aad
  kInto,
  kBound,
  kSalc,
  kSoftwareInterrupt,  // int n
  kEnterNested,
  // A sensitive instruction of the system architecture (privileged, segment
  // loads, far transfers, iret, port I/O, ...): emulated by runtime/system/
  // where a SystemContext exists (the BT backend); #UD in the flat harness.
  kSystem,
  // A store that kept hitting traced pages, adapted to leave the cache and
  // do its store and the tracing work in software (no host fault).
  kTracedStore,
  // A string instruction through a compensated segment, element by element.
  kString,
  kUnsupported,  // No translation exists (EVEX, XOP, TSX, ...): #UD.
  kCount,
};

struct OpcodeEntry {
  ZydisMnemonic mnemonic;
  TranslationKind kind;
  Emitter emitter;
  CalloutId callout = CalloutId::kNone;
};

std::span<const OpcodeEntry> opcode_table();
OpcodeEntry classify(const DecodedInstruction& d);
const char* translation_kind_name(TranslationKind kind);

}  // namespace bt86
