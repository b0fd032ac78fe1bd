#include "tests/difftest/instruction_forms.h"

#include "monitor/cpu_state.h"

namespace bt86::difftest {
namespace {

namespace Inst = asmjit::x86::Inst;
using enum Op;

constexpr uint32_t CF = eflags::kCf, PF = eflags::kPf, AF = eflags::kAf, ZF = eflags::kZf,
                   SF = eflags::kSf, OF = eflags::kOf;
constexpr uint32_t ALL = eflags::kArith;
constexpr uint32_t LOGIC_DEF = CF | PF | ZF | SF | OF;
constexpr uint8_t S_ALL = kSize8 | kSize16 | kSize32;
constexpr uint8_t S_1632 = kSize16 | kSize32;

constexpr uint8_t kUd2[] = {0x0F, 0x0B};
constexpr uint8_t kFeSlash7[] = {0xFE, 0xF8};
constexpr uint8_t kFfSlash7[] = {0xFF, 0xFF};
constexpr uint8_t kLockNop[] = {0xF0, 0x90};
constexpr uint8_t kInt3[] = {0xCC};
constexpr uint8_t kPushEs[] = {0x06};
constexpr uint8_t kPushCs[] = {0x0E};
constexpr uint8_t kPushSs16[] = {0x66, 0x16};
constexpr uint8_t kPushDs[] = {0x1E};
constexpr uint8_t kPushFs[] = {0x0F, 0xA0};
constexpr uint8_t kPushGs16[] = {0x66, 0x0F, 0xA8};
constexpr uint8_t kMovEaxDs[] = {0x8C, 0xD8};
constexpr uint8_t kMovCxCs[] = {0x66, 0x8C, 0xC9};
// mov ebx, 0xA002; mov [ebx], es (an unaligned slot in the data area).
constexpr uint8_t kMovMemEs[] = {0xBB, 0x02, 0xA0, 0x00, 0x00, 0x8C, 0x03};
// Invalid in 64-bit mode, so callouts: BCD adjusts and salc.
constexpr uint8_t kDaa[] = {0x27};
constexpr uint8_t kDas[] = {0x2F};
constexpr uint8_t kAaa[] = {0x37};
constexpr uint8_t kAas[] = {0x3F};
constexpr uint8_t kAam[] = {0xD4, 0x0A};
constexpr uint8_t kAam7[] = {0xD4, 0x07};
constexpr uint8_t kAad[] = {0xD5, 0x0A};
constexpr uint8_t kAad16[] = {0xD5, 0x10};
constexpr uint8_t kSalc[] = {0xD6};
constexpr uint8_t kAam0[] = {0xD4, 0x00};
constexpr uint8_t kInto[] = {0xCE};
// bound eax, [0x8100] and bound cx, [0x8204]: random data, so sometimes #BR.
constexpr uint8_t kBound[] = {0x62, 0x05, 0x00, 0x81, 0x00, 0x00};
constexpr uint8_t kBound16[] = {0x66, 0x62, 0x0D, 0x04, 0x82, 0x00, 0x00};

// clang-format off
constexpr InstructionForm kForms[] = {
  // name                 class              id                 operands              sizes   reads defines undefs special
  {"add",      FormClass::kAlu, Inst::kIdAdd,  {kRm, kReg},  S_ALL, 0, ALL, 0, Special::kLockable},
  {"add imm",  FormClass::kAlu, Inst::kIdAdd,  {kRm, kImm},  S_ALL, 0, ALL, 0, Special::kLockable},
  {"add r,m",  FormClass::kAlu, Inst::kIdAdd,  {kReg, kMem}, S_ALL, 0, ALL, 0},
  {"or",       FormClass::kAlu, Inst::kIdOr,   {kRm, kReg},  S_ALL, 0, LOGIC_DEF, AF, Special::kLockable},
  {"or imm",   FormClass::kAlu, Inst::kIdOr,   {kRm, kImm},  S_ALL, 0, LOGIC_DEF, AF},
  {"adc",      FormClass::kAlu, Inst::kIdAdc,  {kRm, kReg},  S_ALL, CF, ALL, 0, Special::kLockable},
  {"adc imm",  FormClass::kAlu, Inst::kIdAdc,  {kRm, kImm},  S_ALL, CF, ALL, 0},
  {"sbb",      FormClass::kAlu, Inst::kIdSbb,  {kReg, kRm},  S_ALL, CF, ALL, 0},
  {"sbb imm",  FormClass::kAlu, Inst::kIdSbb,  {kRm, kImm},  S_ALL, CF, ALL, 0, Special::kLockable},
  {"and",      FormClass::kAlu, Inst::kIdAnd,  {kRm, kReg},  S_ALL, 0, LOGIC_DEF, AF, Special::kLockable},
  {"and imm",  FormClass::kAlu, Inst::kIdAnd,  {kRm, kImm},  S_ALL, 0, LOGIC_DEF, AF},
  {"sub",      FormClass::kAlu, Inst::kIdSub,  {kRm, kReg},  S_ALL, 0, ALL, 0, Special::kLockable},
  {"sub imm",  FormClass::kAlu, Inst::kIdSub,  {kRm, kImm},  S_ALL, 0, ALL, 0},
  {"xor",      FormClass::kAlu, Inst::kIdXor,  {kReg, kRm},  S_ALL, 0, LOGIC_DEF, AF},
  {"xor imm",  FormClass::kAlu, Inst::kIdXor,  {kRm, kImm},  S_ALL, 0, LOGIC_DEF, AF, Special::kLockable},
  {"cmp",      FormClass::kAlu, Inst::kIdCmp,  {kRm, kReg},  S_ALL, 0, ALL, 0},
  {"cmp imm",  FormClass::kAlu, Inst::kIdCmp,  {kRm, kImm},  S_ALL, 0, ALL, 0},
  {"test",     FormClass::kAlu, Inst::kIdTest, {kRm, kReg},  S_ALL, 0, LOGIC_DEF, AF},
  {"test imm", FormClass::kAlu, Inst::kIdTest, {kRm, kImm},  S_ALL, 0, LOGIC_DEF, AF},
  {"inc",      FormClass::kAlu, Inst::kIdInc,  {kRm},        S_ALL, 0, ALL & ~CF, 0, Special::kLockable},
  {"dec",      FormClass::kAlu, Inst::kIdDec,  {kRm},        S_ALL, 0, ALL & ~CF, 0, Special::kLockable},
  {"neg",      FormClass::kAlu, Inst::kIdNeg,  {kRm},        S_ALL, 0, ALL, 0, Special::kLockable},
  {"not",      FormClass::kAlu, Inst::kIdNot,  {kRm},        S_ALL, 0, 0, 0, Special::kLockable},
  {"mov",      FormClass::kAlu, Inst::kIdMov,  {kRm, kReg},  S_ALL, 0, 0, 0},
  {"mov r,m",  FormClass::kAlu, Inst::kIdMov,  {kReg, kRm},  S_ALL, 0, 0, 0},
  {"mov imm",  FormClass::kAlu, Inst::kIdMov,  {kRm, kImm},  S_ALL, 0, 0, 0},

  {"shl",  FormClass::kShift, Inst::kIdShl, {kRm, kImm8}, S_ALL, 0, 0, 0, Special::kShift},
  {"shl1", FormClass::kShift, Inst::kIdShl, {kRm, kOne},  S_ALL, 0, 0, 0, Special::kShift},
  {"shlcl",FormClass::kShift, Inst::kIdShl, {kRm, kCl},   S_ALL, 0, 0, 0, Special::kShift},
  {"shr",  FormClass::kShift, Inst::kIdShr, {kRm, kImm8}, S_ALL, 0, 0, 0, Special::kShift},
  {"shrcl",FormClass::kShift, Inst::kIdShr, {kRm, kCl},   S_ALL, 0, 0, 0, Special::kShift},
  {"sar",  FormClass::kShift, Inst::kIdSar, {kRm, kImm8}, S_ALL, 0, 0, 0, Special::kShift},
  {"sar1", FormClass::kShift, Inst::kIdSar, {kRm, kOne},  S_ALL, 0, 0, 0, Special::kShift},
  {"sarcl",FormClass::kShift, Inst::kIdSar, {kRm, kCl},   S_ALL, 0, 0, 0, Special::kShift},
  {"rol",  FormClass::kShift, Inst::kIdRol, {kRm, kImm8}, S_ALL, 0, 0, 0, Special::kRotate},
  {"rolcl",FormClass::kShift, Inst::kIdRol, {kRm, kCl},   S_ALL, 0, 0, 0, Special::kRotate},
  {"ror",  FormClass::kShift, Inst::kIdRor, {kRm, kImm8}, S_ALL, 0, 0, 0, Special::kRotate},
  {"ror1", FormClass::kShift, Inst::kIdRor, {kRm, kOne},  S_ALL, 0, 0, 0, Special::kRotate},
  {"rcl",  FormClass::kShift, Inst::kIdRcl, {kRm, kImm8}, S_ALL, CF, 0, 0, Special::kRotateCarry},
  {"rclcl",FormClass::kShift, Inst::kIdRcl, {kRm, kCl},   S_ALL, CF, 0, 0, Special::kRotateCarry},
  {"rcr",  FormClass::kShift, Inst::kIdRcr, {kRm, kImm8}, S_ALL, CF, 0, 0, Special::kRotateCarry},
  {"rcr1", FormClass::kShift, Inst::kIdRcr, {kRm, kOne},  S_ALL, CF, 0, 0, Special::kRotateCarry},
  {"shld", FormClass::kShift, Inst::kIdShld, {kRm, kReg, kImm8}, S_1632, 0, 0, 0, Special::kShiftDouble},
  {"shldcl",FormClass::kShift,Inst::kIdShld, {kRm, kReg, kCl},   S_1632, 0, 0, 0, Special::kShiftDouble},
  {"shrd", FormClass::kShift, Inst::kIdShrd, {kRm, kReg, kImm8}, S_1632, 0, 0, 0, Special::kShiftDouble},
  {"shrdcl",FormClass::kShift,Inst::kIdShrd, {kRm, kReg, kCl},   S_1632, 0, 0, 0, Special::kShiftDouble},

  {"mul",   FormClass::kMulDiv, Inst::kIdMul,  {kRm},             S_ALL,  0, CF | OF, SF | ZF | AF | PF},
  {"imul1", FormClass::kMulDiv, Inst::kIdImul, {kRm},             S_ALL,  0, CF | OF, SF | ZF | AF | PF},
  {"imul2", FormClass::kMulDiv, Inst::kIdImul, {kReg, kRm},       S_1632, 0, CF | OF, SF | ZF | AF | PF},
  {"imul3", FormClass::kMulDiv, Inst::kIdImul, {kReg, kRm, kImm}, S_1632, 0, CF | OF, SF | ZF | AF | PF},
  {"imul3b",FormClass::kMulDiv, Inst::kIdImul, {kReg, kRm, kImm8},S_1632, 0, CF | OF, SF | ZF | AF | PF},
  {"div",   FormClass::kMulDiv, Inst::kIdDiv,  {kRm},             S_ALL,  0, 0, ALL, Special::kDivide},
  {"idiv",  FormClass::kMulDiv, Inst::kIdIdiv, {kRm},             S_ALL,  0, 0, ALL, Special::kDivide},

  {"bt",     FormClass::kBit, Inst::kIdBt,  {kRm, kImm8}, S_1632, 0, CF, OF | SF | AF | PF},
  {"bt r",   FormClass::kBit, Inst::kIdBt,  {kReg, kReg}, S_1632, 0, CF, OF | SF | AF | PF},
  {"bts",    FormClass::kBit, Inst::kIdBts, {kRm, kImm8}, S_1632, 0, CF, OF | SF | AF | PF, Special::kLockable},
  {"bts r",  FormClass::kBit, Inst::kIdBts, {kReg, kReg}, S_1632, 0, CF, OF | SF | AF | PF},
  {"btr",    FormClass::kBit, Inst::kIdBtr, {kRm, kImm8}, S_1632, 0, CF, OF | SF | AF | PF, Special::kLockable},
  {"btr r",  FormClass::kBit, Inst::kIdBtr, {kReg, kReg}, S_1632, 0, CF, OF | SF | AF | PF},
  {"btc",    FormClass::kBit, Inst::kIdBtc, {kRm, kImm8}, S_1632, 0, CF, OF | SF | AF | PF, Special::kLockable},
  {"btc r",  FormClass::kBit, Inst::kIdBtc, {kReg, kReg}, S_1632, 0, CF, OF | SF | AF | PF},
  {"bsf",    FormClass::kBit, Inst::kIdBsf, {kReg, kRm},  S_1632, 0, ZF, CF | OF | SF | AF | PF},
  {"bsr",    FormClass::kBit, Inst::kIdBsr, {kReg, kRm},  S_1632, 0, ZF, CF | OF | SF | AF | PF},

  {"jcc",    FormClass::kCond, Inst::kIdNone, {}, 0, 0, 0, 0, Special::kJcc},
  {"setcc",  FormClass::kCond, Inst::kIdNone, {kRm8}, 0, 0, 0, 0, Special::kSetcc},
  {"cmovcc", FormClass::kCond, Inst::kIdNone, {kReg, kRm}, S_1632, 0, 0, 0, Special::kCmovcc},
  {"jmp",    FormClass::kCond, Inst::kIdJmp, {}, 0, 0, 0, 0, Special::kJmpForward},
  {"jecxz",  FormClass::kCond, Inst::kIdJecxz, {}, 0, 0, 0, 0, Special::kJecxz},

  {"bswap",     FormClass::kAtomic, Inst::kIdBswap,     {kR32},             0,     0, 0, 0},
  {"xchg",      FormClass::kAtomic, Inst::kIdXchg,      {kRm, kReg},        S_ALL, 0, 0, 0, Special::kLockable},
  {"cmpxchg",   FormClass::kAtomic, Inst::kIdCmpxchg,   {kRm, kReg},        S_ALL, 0, ALL, 0, Special::kLockable},
  {"cmpxchg8b", FormClass::kAtomic, Inst::kIdCmpxchg8b, {kM64},             0,     0, ZF, 0, Special::kLockable},
  {"xadd",      FormClass::kAtomic, Inst::kIdXadd,      {kRm, kReg},        S_ALL, 0, ALL, 0, Special::kLockable},

  {"daa",     FormClass::kAlu, Inst::kIdNone, {}, 0, CF | AF, CF | AF | SF | ZF | PF, OF, Special::kRawBytes, kDaa},
  {"das",     FormClass::kAlu, Inst::kIdNone, {}, 0, CF | AF, CF | AF | SF | ZF | PF, OF, Special::kRawBytes, kDas},
  {"aaa",     FormClass::kAlu, Inst::kIdNone, {}, 0, AF, CF | AF, OF | SF | ZF | PF, Special::kRawBytes, kAaa},
  {"aas",     FormClass::kAlu, Inst::kIdNone, {}, 0, AF, CF | AF, OF | SF | ZF | PF, Special::kRawBytes, kAas},
  {"aam",     FormClass::kAlu, Inst::kIdNone, {}, 0, 0, SF | ZF | PF, OF | AF | CF, Special::kRawBytes, kAam},
  {"aam 7",   FormClass::kAlu, Inst::kIdNone, {}, 0, 0, SF | ZF | PF, OF | AF | CF, Special::kRawBytes, kAam7},
  {"aad",     FormClass::kAlu, Inst::kIdNone, {}, 0, 0, SF | ZF | PF, OF | AF | CF, Special::kRawBytes, kAad},
  {"aad 16",  FormClass::kAlu, Inst::kIdNone, {}, 0, 0, SF | ZF | PF, OF | AF | CF, Special::kRawBytes, kAad16},
  {"salc",    FormClass::kAlu, Inst::kIdNone, {}, 0, CF, 0, 0, Special::kRawBytes, kSalc},
  {"into",    FormClass::kAlu, Inst::kIdNone, {}, 0, OF, 0, 0, Special::kRawBytes, kInto},
  {"bound",   FormClass::kAlu, Inst::kIdNone, {}, 0, 0, 0, 0, Special::kRawBytes, kBound},
  {"bound 16", FormClass::kAlu, Inst::kIdNone, {}, 0, 0, 0, 0, Special::kRawBytes, kBound16},

  {"string", FormClass::kString, Inst::kIdNone, {}, 0, 0, 0, 0, Special::kString},

  {"push r",    FormClass::kStack, Inst::kIdPush,   {kReg},  S_1632, 0, 0, 0},
  {"push m",    FormClass::kStack, Inst::kIdPush,   {kMem},  S_1632, 0, 0, 0},
  {"push imm",  FormClass::kStack, Inst::kIdPush,   {kImm},  kSize32, 0, 0, 0},
  {"pop r",     FormClass::kStack, Inst::kIdPop,    {kReg},  S_1632, 0, 0, 0},
  {"pop m",     FormClass::kStack, Inst::kIdPop,    {kMem},  S_1632, 0, 0, 0},
  {"pushad",    FormClass::kStack, Inst::kIdPushad, {},      0, 0, 0, 0},
  {"popad",     FormClass::kStack, Inst::kIdPopad,  {},      0, 0, 0, 0},
  {"pushaw",    FormClass::kStack, Inst::kIdPusha,  {},      0, 0, 0, 0},
  {"popaw",     FormClass::kStack, Inst::kIdPopa,   {},      0, 0, 0, 0},
  {"call/ret",  FormClass::kStack, Inst::kIdNone,   {},      0, 0, 0, 0, Special::kCallRet},
  {"enter",     FormClass::kStack, Inst::kIdEnter,  {},      0, 0, 0, 0, Special::kEnterLeave},
  {"loop",      FormClass::kStack, Inst::kIdLoop,   {},      0, 0, 0, 0, Special::kLoop},
  {"loope",     FormClass::kStack, Inst::kIdLoope,  {},      0, 0, 0, 0, Special::kLoop},
  {"loopne",    FormClass::kStack, Inst::kIdLoopne, {},      0, 0, 0, 0, Special::kLoop},
  {"pushfd",    FormClass::kStack, Inst::kIdPushfd, {},      0, ALL, 0, 0},
  {"push es",   FormClass::kStack, Inst::kIdNone,   {},      0, 0, 0, 0, Special::kRawBytes, kPushEs},
  {"push cs",   FormClass::kStack, Inst::kIdNone,   {},      0, 0, 0, 0, Special::kRawBytes, kPushCs},
  {"push ss (16)", FormClass::kStack, Inst::kIdNone, {},     0, 0, 0, 0, Special::kRawBytes, kPushSs16},
  {"push ds",   FormClass::kStack, Inst::kIdNone,   {},      0, 0, 0, 0, Special::kRawBytes, kPushDs},
  {"push fs",   FormClass::kStack, Inst::kIdNone,   {},      0, 0, 0, 0, Special::kRawBytes, kPushFs},
  {"push gs (16)", FormClass::kStack, Inst::kIdNone, {},     0, 0, 0, 0, Special::kRawBytes, kPushGs16},
  {"mov eax, ds", FormClass::kStack, Inst::kIdNone, {},      0, 0, 0, 0, Special::kRawBytes, kMovEaxDs},
  {"mov cx, cs", FormClass::kStack, Inst::kIdNone,  {},      0, 0, 0, 0, Special::kRawBytes, kMovCxCs},
  {"mov m16, es", FormClass::kStack, Inst::kIdNone, {},      0, 0, 0, 0, Special::kRawBytes, kMovMemEs},
  {"popfd",     FormClass::kStack, Inst::kIdPopfd,  {},      0, 0, ALL, 0, Special::kPopf},

  {"lea",    FormClass::kMisc, Inst::kIdLea,   {kReg, kMem},  S_1632, 0, 0, 0},
  {"movzx8", FormClass::kMisc, Inst::kIdMovzx, {kReg, kRm8},  S_1632, 0, 0, 0},
  {"movzx16",FormClass::kMisc, Inst::kIdMovzx, {kR32, kRm16}, 0,      0, 0, 0},
  {"movsx8", FormClass::kMisc, Inst::kIdMovsx, {kReg, kRm8},  S_1632, 0, 0, 0},
  {"movsx16",FormClass::kMisc, Inst::kIdMovsx, {kR32, kRm16}, 0,      0, 0, 0},
  {"cbw",    FormClass::kMisc, Inst::kIdCbw,   {}, 0, 0, 0, 0},
  {"cwde",   FormClass::kMisc, Inst::kIdCwde,  {}, 0, 0, 0, 0},
  {"cwd",    FormClass::kMisc, Inst::kIdCwd,   {}, 0, 0, 0, 0},
  {"cdq",    FormClass::kMisc, Inst::kIdCdq,   {}, 0, 0, 0, 0},
  {"sahf",   FormClass::kMisc, Inst::kIdSahf,  {}, 0, 0, CF | PF | AF | ZF | SF, 0},
  {"lahf",   FormClass::kMisc, Inst::kIdLahf,  {}, 0, CF | PF | AF | ZF | SF, 0, 0},
  {"cld",    FormClass::kMisc, Inst::kIdCld,   {}, 0, 0, 0, 0},
  {"std",    FormClass::kMisc, Inst::kIdStd,   {}, 0, 0, 0, 0},
  {"cmc",    FormClass::kMisc, Inst::kIdCmc,   {}, 0, CF, CF, 0},

  {"fld m32",   FormClass::kX87, Inst::kIdFld,   {kMF32},      0, 0, 0, 0},
  {"fld m64",   FormClass::kX87, Inst::kIdFld,   {kMF64},      0, 0, 0, 0},
  {"fld st",    FormClass::kX87, Inst::kIdFld,   {kSt},        0, 0, 0, 0},
  {"fst m32",   FormClass::kX87, Inst::kIdFst,   {kMSt32},     0, 0, 0, 0},
  {"fstp m64",  FormClass::kX87, Inst::kIdFstp,  {kMSt64},     0, 0, 0, 0},
  {"fstp st",   FormClass::kX87, Inst::kIdFstp,  {kSt},        0, 0, 0, 0},
  {"fild m16",  FormClass::kX87, Inst::kIdFild,  {kMI16},      0, 0, 0, 0},
  {"fild m32",  FormClass::kX87, Inst::kIdFild,  {kMI32},      0, 0, 0, 0},
  {"fistp m32", FormClass::kX87, Inst::kIdFistp, {kMI32},      0, 0, 0, 0},
  {"fadd",      FormClass::kX87, Inst::kIdFadd,  {kSt0, kSt},  0, 0, 0, 0},
  {"fadd m64",  FormClass::kX87, Inst::kIdFadd,  {kMF64},      0, 0, 0, 0},
  {"fsub",      FormClass::kX87, Inst::kIdFsub,  {kSt, kSt0},  0, 0, 0, 0},
  {"fmul",      FormClass::kX87, Inst::kIdFmul,  {kSt0, kSt},  0, 0, 0, 0},
  {"fdiv",      FormClass::kX87, Inst::kIdFdiv,  {kSt0, kSt},  0, 0, 0, 0},
  {"fdiv m32",  FormClass::kX87, Inst::kIdFdiv,  {kMF32},      0, 0, 0, 0},
  {"fxch",      FormClass::kX87, Inst::kIdFxch,  {kSt},        0, 0, 0, 0},
  {"fcom",      FormClass::kX87, Inst::kIdFcom,  {kSt},        0, 0, 0, 0},
  {"fcomi",     FormClass::kX87, Inst::kIdFcomi, {kSt},  0, 0, ALL, 0},
  {"fnstsw",    FormClass::kX87, Inst::kIdFnstsw,{kAx},        0, 0, 0, 0},
  {"fnstsw m",  FormClass::kX87, Inst::kIdFnstsw,{kMI16},      0, 0, 0, 0},
  {"fnstcw",    FormClass::kX87, Inst::kIdFnstcw,{kMI16},      0, 0, 0, 0},
  {"fldcw",     FormClass::kX87, Inst::kIdFldcw, {}, 0, 0, 0, 0, Special::kFldcw},

  {"movd mm,r",  FormClass::kMmx, Inst::kIdMovd,    {kMm, kR32},   0, 0, 0, 0},
  {"movd r,mm",  FormClass::kMmx, Inst::kIdMovd,    {kR32, kMm},   0, 0, 0, 0},
  {"movq mm,m",  FormClass::kMmx, Inst::kIdMovq,    {kMm, kMmM64}, 0, 0, 0, 0},
  {"movq m,mm",  FormClass::kMmx, Inst::kIdMovq,    {kM64, kMm},   0, 0, 0, 0},
  {"paddb",      FormClass::kMmx, Inst::kIdPaddb,   {kMm, kMmM64}, 0, 0, 0, 0},
  {"paddw",      FormClass::kMmx, Inst::kIdPaddw,   {kMm, kMmM64}, 0, 0, 0, 0},
  {"paddd",      FormClass::kMmx, Inst::kIdPaddd,   {kMm, kMmM64}, 0, 0, 0, 0},
  {"paddq",      FormClass::kMmx, Inst::kIdPaddq,   {kMm, kMmM64}, 0, 0, 0, 0},
  {"psubb",      FormClass::kMmx, Inst::kIdPsubb,   {kMm, kMmM64}, 0, 0, 0, 0},
  {"psubd",      FormClass::kMmx, Inst::kIdPsubd,   {kMm, kMmM64}, 0, 0, 0, 0},
  {"psubq",      FormClass::kMmx, Inst::kIdPsubq,   {kMm, kMmM64}, 0, 0, 0, 0},
  {"pand",       FormClass::kMmx, Inst::kIdPand,    {kMm, kMmM64}, 0, 0, 0, 0},
  {"por",        FormClass::kMmx, Inst::kIdPor,     {kMm, kMmM64}, 0, 0, 0, 0},
  {"pxor",       FormClass::kMmx, Inst::kIdPxor,    {kMm, kMmM64}, 0, 0, 0, 0},
  {"pcmpeqb",    FormClass::kMmx, Inst::kIdPcmpeqb, {kMm, kMmM64}, 0, 0, 0, 0},
  {"pcmpeqw",    FormClass::kMmx, Inst::kIdPcmpeqw, {kMm, kMmM64}, 0, 0, 0, 0},
  {"pcmpeqd",    FormClass::kMmx, Inst::kIdPcmpeqd, {kMm, kMmM64}, 0, 0, 0, 0},
  {"emms",       FormClass::kMmx, Inst::kIdEmms,    {},            0, 0, 0, 0},

  {"movaps",    FormClass::kSse, Inst::kIdMovaps,    {kXmm, kXmmM128Aligned}, 0, 0, 0, 0},
  {"movaps st", FormClass::kSse, Inst::kIdMovaps,    {kXmmM128Aligned, kXmm}, 0, 0, 0, 0},
  {"movups",    FormClass::kSse, Inst::kIdMovups,    {kXmm, kXmmM128}, 0, 0, 0, 0},
  {"movups st", FormClass::kSse, Inst::kIdMovups,    {kXmmM128, kXmm}, 0, 0, 0, 0},
  {"movss",     FormClass::kSse, Inst::kIdMovss,     {kXmm, kXmmM32},  0, 0, 0, 0},
  {"movsd",     FormClass::kSse, Inst::kIdMovsd,     {kXmm, kXmmM64},  0, 0, 0, 0},
  {"addps",     FormClass::kSse, Inst::kIdAddps,     {kXmm, kXmmM128Aligned}, 0, 0, 0, 0},
  {"mulps",     FormClass::kSse, Inst::kIdMulps,     {kXmm, kXmmM128Aligned}, 0, 0, 0, 0},
  {"subss",     FormClass::kSse, Inst::kIdSubss,     {kXmm, kXmmM32},  0, 0, 0, 0},
  {"divsd",     FormClass::kSse, Inst::kIdDivsd,     {kXmm, kXmmM64},  0, 0, 0, 0},
  {"andps",     FormClass::kSse, Inst::kIdAndps,     {kXmm, kXmmM128Aligned}, 0, 0, 0, 0},
  {"xorps",     FormClass::kSse, Inst::kIdXorps,     {kXmm, kXmmM128Aligned}, 0, 0, 0, 0},
  {"cvtsi2ss",  FormClass::kSse, Inst::kIdCvtsi2ss,  {kXmm, kR32},     0, 0, 0, 0},
  {"cvttss2si", FormClass::kSse, Inst::kIdCvttss2si, {kR32, kXmmM32},  0, 0, 0, 0},
  {"comiss",    FormClass::kSse, Inst::kIdComiss,    {kXmm, kXmmM32},  0, 0, ALL, 0},
  {"ucomisd",   FormClass::kSse, Inst::kIdUcomisd,   {kXmm, kXmmM64},  0, 0, ALL, 0},
  {"pshufd",    FormClass::kSse, Inst::kIdPshufd,    {kXmm, kXmmM128Aligned, kImm8}, 0, 0, 0, 0},
  {"paddd x",   FormClass::kSse, Inst::kIdPaddd,     {kXmm, kXmmM128Aligned}, 0, 0, 0, 0},
  {"movdqu",    FormClass::kSse, Inst::kIdMovdqu,    {kXmm, kXmmM128}, 0, 0, 0, 0},
  {"movdqu st", FormClass::kSse, Inst::kIdMovdqu,    {kXmmM128, kXmm}, 0, 0, 0, 0},
  {"movdqa",    FormClass::kSse, Inst::kIdMovdqa,    {kXmm, kXmmM128Aligned}, 0, 0, 0, 0},

  {"ud2",          FormClass::kFault, Inst::kIdNone, {}, 0, 0, 0, 0, Special::kRawBytes, kUd2},
  {"fe /7",        FormClass::kFault, Inst::kIdNone, {}, 0, 0, 0, 0, Special::kRawBytes, kFeSlash7},
  {"ff /7",        FormClass::kFault, Inst::kIdNone, {}, 0, 0, 0, 0, Special::kRawBytes, kFfSlash7},
  {"lock nop",     FormClass::kFault, Inst::kIdNone, {}, 0, 0, 0, 0, Special::kRawBytes, kLockNop},
  {"int3",         FormClass::kFault, Inst::kIdNone, {}, 0, 0, 0, 0, Special::kRawBytes, kInt3},
  {"aam 0",        FormClass::kFault, Inst::kIdNone, {}, 0, 0, 0, 0, Special::kRawBytes, kAam0},
  {"div by zero",  FormClass::kFault, Inst::kIdDiv,  {}, 0, 0, 0, 0, Special::kDivideByZero},
  {"div overflow", FormClass::kFault, Inst::kIdIdiv, {}, 0, 0, 0, 0, Special::kDivideOverflow},
  {"pf outside",   FormClass::kFault, Inst::kIdMov,  {}, 0, 0, 0, 0, Special::kAccessOutside},
  {"pf read-only", FormClass::kFault, Inst::kIdMov,  {}, 0, 0, 0, 0, Special::kWriteReadOnly},
  {"pf no-access", FormClass::kFault, Inst::kIdMov,  {}, 0, 0, 0, 0, Special::kReadNoAccess},
  {"gp movaps",    FormClass::kFault, Inst::kIdMovaps, {}, 0, 0, 0, 0, Special::kMisalignedSse},
};
// clang-format on

}  // namespace

std::string_view class_name(FormClass c) {
  constexpr std::string_view kNames[kNumFormClasses] = {
      "alu",   "shift", "muldiv", "bit", "cond", "atomic", "string",
      "stack", "misc",  "x87",    "mmx", "sse",  "fault"};
  return kNames[static_cast<int>(c)];
}

std::span<const InstructionForm> instruction_forms() {
  return kForms;
}

}  // namespace bt86::difftest
