// The instruction-form table the differential tester generates from: one
// row per instruction form, with its operand kinds, the operand sizes it
// comes in, and the arithmetic flags it reads, defines and leaves undefined
// (SDM). Rows whose operands or flag behaviour depend on a value chosen at
// generation time (shift counts, condition codes, string prefixes, compound
// set-ups such as loops and call/ret) name a Special that the generator
// handles; everything else is plain data.
#pragma once

#include <asmjit/x86.h>

#include <cstdint>
#include <span>
#include <string_view>

namespace bt86::difftest {

enum class FormClass : uint8_t {
  kAlu,
  kShift,
  kMulDiv,
  kBit,
  kCond,
  kAtomic,
  kString,
  kStack,
  kMisc,
  kX87,
  kMmx,
  kSse,
  kFault,
};
inline constexpr int kNumFormClasses = 13;
std::string_view class_name(FormClass c);

// Operand kinds. The "sized" kinds take the size picked for the row from its
// size mask; the others have a fixed size.
enum class Op : uint8_t {
  kNone,
  kRm,    // Register or memory, sized.
  kReg,   // Register, sized (never ESP/SP).
  kMem,   // Memory in the data area, sized.
  kImm,   // Immediate, sized (8/16/32).
  kImm8,  // 8-bit immediate whatever the operand size.
  kOne,   // The constant 1 (shift/rotate by one encoding).
  kCl,    // CL holding a count the generator loads first.
  kR32,
  kR16,
  kRm8,
  kRm16,
  kM64,
  kMm,
  kMmM64,
  kXmm,
  kXmmM32,
  kXmmM64,
  kXmmM128,
  kXmmM128Aligned,
  kSt,     // st(i)
  kSt0,    // st(0)
  kMF32,   // Memory holding a finite float.
  kMF64,   // Memory holding a finite double.
  kMI16,   // Memory, 16-bit integer.
  kMI32,   // Memory, 32-bit integer.
  kMSt32,  // Memory destination for float stores.
  kMSt64,
  kAx,  // AX (fnstsw ax).
};

enum class Special : uint8_t {
  kNone,
  kShift,        // Count known at generation; flags by the shift rules.
  kRotate,       // rol/ror.
  kRotateCarry,  // rcl/rcr.
  kShiftDouble,  // shld/shrd.
  kDivide,       // div/idiv: usually a safe set-up, sometimes raw (#DE).
  kJcc,
  kSetcc,
  kCmovcc,
  kJmpForward,
  kLoop,  // loop/loope/loopne over a one-instruction body, bounded ECX.
  kJecxz,
  kCallRet,
  kEnterLeave,
  kPopf,
  kString,  // movs/stos/lods/cmps/scas with optional rep/repe/repne.
  kFldcw,
  kRawBytes,        // Fixed bytes (faults).
  kDivideByZero,    // Always #DE.
  kDivideOverflow,  // Always #DE.
  kAccessOutside,   // #PF outside the image.
  kWriteReadOnly,   // #PF on the read-only page.
  kReadNoAccess,    // #PF on the no-access page.
  kMisalignedSse,   // #GP(0) from movaps on an unaligned address.
  kLockable,        // Memory destination may take a lock prefix.
};

inline constexpr uint8_t kSize8 = 1, kSize16 = 2, kSize32 = 4;

struct InstructionForm {
  std::string_view name;
  FormClass cls;
  asmjit::InstId id;
  Op ops[3];
  uint8_t sizes;  // kSize* mask for the sized operand kinds; 0 if none.
  uint32_t reads;
  uint32_t defines;
  uint32_t undefs;
  Special special = Special::kNone;
  std::span<const uint8_t> raw = {};
};

std::span<const InstructionForm> instruction_forms();

}  // namespace bt86::difftest
