#include "runtime/callouts.h"

#include <array>

#include "monitor/cpuid_model.h"
#include "runtime/system/instruction_operands.h"
#include "shadow/descriptor.h"

namespace bt86 {
namespace {

using Action = CalloutResult::Action;

CalloutResult next(CalloutEnvironment& env) {
  env.state.eip = env.instruction.next_eip();
  return {};
}

CalloutResult fault(uint8_t vector, std::optional<uint32_t> error_code = std::nullopt) {
  CalloutResult r;
  r.action = Action::kException;
  r.exception.vector = vector;
  r.exception.error_code = error_code;
  return r;
}

CalloutResult trap(CalloutEnvironment& env, uint8_t vector) {
  env.state.eip = env.instruction.next_eip();
  return fault(vector);
}

CalloutResult memory_fault(const GuestException& e) {
  CalloutResult r;
  r.action = Action::kException;
  r.exception = e;
  return r;
}

// The linear address of an access through a segment register, after its
// limit and type checks (#SS(0) for SS, #GP(0) otherwise).
bool segmented_linear(CalloutEnvironment& env, SegReg reg, uint32_t offset, uint32_t size,
                      SegmentAccess access, uint32_t* linear, GuestException* fault) {
  const Segment& seg = env.state.segment(reg);
  if (!access_bounds(seg, access).contains(offset, size)) {
    *fault = {segment_fault_vector(reg), 0u, std::nullopt};
    return false;
  }
  *linear = seg.base + offset;
  return true;
}

bool read_segmented(CalloutEnvironment& env, SegReg reg, uint32_t offset, void* data, uint32_t size,
                    GuestException* fault) {
  uint32_t linear = 0;
  return segmented_linear(env, reg, offset, size, SegmentAccess::kRead, &linear, fault) &&
         env.memory.read(linear, data, size, fault);
}

bool write_segmented(CalloutEnvironment& env, SegReg reg, uint32_t offset, const void* data,
                     uint32_t size, GuestException* fault) {
  uint32_t linear = 0;
  return segmented_linear(env, reg, offset, size, SegmentAccess::kWrite, &linear, fault) &&
         env.memory.write(linear, data, size, fault);
}

uint32_t parity_zero_sign(uint8_t v) {
  uint32_t f = 0;
  if (v == 0) f |= eflags::kZf;
  if (v & 0x80) f |= eflags::kSf;
  if (__builtin_parity(v) == 0) f |= eflags::kPf;
  return f;
}

// A stack register (ESP or EBP) moved by delta (SP alone on a 16-bit stack).
uint32_t stack_moved(const Segment& ss, uint32_t reg, int32_t delta) {
  return with_stack_offset(ss, reg, reg + static_cast<uint32_t>(delta));
}

// Stack pushes of a whole group: written below ESP, then ESP moves, so a
// fault leaves the registers untouched.
bool push_all(CalloutEnvironment& env, const uint32_t* values, int count, int size,
              GuestException* fault) {
  const Segment& ss = env.state.segment(SegReg::kSs);
  uint32_t esp = env.state.reg(Gpr::kEsp);
  for (int i = 0; i < count; ++i) {
    esp = stack_moved(ss, esp, -size);
    if (!write_segmented(env, SegReg::kSs, stack_offset(ss, esp), &values[i], size, fault)) {
      return false;
    }
  }
  env.state.reg(Gpr::kEsp) = esp;
  return true;
}

CalloutResult halt(CalloutEnvironment&) {
  return {Action::kHalt, {}};
}

CalloutResult unsupported(CalloutEnvironment&) {
  return fault(vector::kUd);
}

CalloutResult cpuid(CalloutEnvironment& env) {
  static const CpuidModel model;
  auto& s = env.state;
  CpuidResult r = model.query(s.reg(Gpr::kEax), s.reg(Gpr::kEcx));
  s.reg(Gpr::kEax) = r.eax;
  s.reg(Gpr::kEbx) = r.ebx;
  s.reg(Gpr::kEcx) = r.ecx;
  s.reg(Gpr::kEdx) = r.edx;
  return next(env);
}

CalloutResult pusha(CalloutEnvironment& env) {
  const int size = env.instruction.insn.operand_width / 8;
  uint32_t v[8];
  for (int i = 0; i < 8; ++i) v[i] = env.state.gpr[i];
  GuestException e;
  if (!push_all(env, v, 8, size, &e)) return memory_fault(e);
  return next(env);
}

CalloutResult popa(CalloutEnvironment& env) {
  const int size = env.instruction.insn.operand_width / 8;
  const Segment& ss = env.state.segment(SegReg::kSs);
  uint32_t esp = env.state.reg(Gpr::kEsp);
  uint32_t v[8] = {};
  GuestException e;
  for (int i = 7; i >= 0; --i) {
    if (!read_segmented(env, SegReg::kSs, stack_offset(ss, esp), &v[i], size, &e)) {
      return memory_fault(e);
    }
    esp = stack_moved(ss, esp, size);
  }
  for (int i = 0; i < 8; ++i) {
    if (i == 4) continue;
    uint32_t& r = env.state.gpr[i];
    r = size == 2 ? ((r & 0xFFFF0000u) | (v[i] & 0xFFFF)) : v[i];
  }
  env.state.reg(Gpr::kEsp) = esp;
  return next(env);
}

CalloutResult decimal_adjust(CalloutEnvironment& env) {
  auto& s = env.state;
  uint32_t& eax = s.reg(Gpr::kEax);
  uint8_t al = eax & 0xFF;
  uint8_t ah = (eax >> 8) & 0xFF;
  const bool cf = s.eflags & eflags::kCf;
  const bool af = s.eflags & eflags::kAf;
  uint32_t flags = s.eflags & ~eflags::kArith;
  switch (env.instruction.mnemonic()) {
    case ZYDIS_MNEMONIC_DAA:
    case ZYDIS_MNEMONIC_DAS: {
      const bool add = env.instruction.mnemonic() == ZYDIS_MNEMONIC_DAA;
      const uint8_t old_al = al;
      bool new_cf = false;
      if ((al & 0xF) > 9 || af) {
        new_cf = cf || (add ? al > 0xF9 : al < 6);
        al = static_cast<uint8_t>(add ? al + 6 : al - 6);
        flags |= eflags::kAf;
      }
      if (old_al > 0x99 || cf) {
        al = static_cast<uint8_t>(add ? al + 0x60 : al - 0x60);
        new_cf = true;
      }
      if (new_cf) flags |= eflags::kCf;
      flags |= parity_zero_sign(al);
      eax = (eax & 0xFFFFFF00u) | al;
      break;
    }
    case ZYDIS_MNEMONIC_AAA:
    case ZYDIS_MNEMONIC_AAS: {
      const bool add = env.instruction.mnemonic() == ZYDIS_MNEMONIC_AAA;
      uint16_t ax = eax & 0xFFFF;
      if ((al & 0xF) > 9 || af) {
        // AX as a whole, as the hardware does: AL's carry or borrow reaches AH.
        ax = static_cast<uint16_t>(add ? ax + 0x106 : ax - 0x106);
        flags |= eflags::kAf | eflags::kCf;
      }
      ax &= 0xFF0F;
      eax = (eax & 0xFFFF0000u) | ax;
      break;
    }
    case ZYDIS_MNEMONIC_AAM: {
      const uint8_t base = env.instruction.insn.raw.imm[0].value.u & 0xFF;
      if (base == 0) return fault(vector::kDe);
      ah = al / base;
      al = al % base;
      flags |= parity_zero_sign(al);
      eax = (eax & 0xFFFF0000u) | (uint32_t{ah} << 8) | al;
      break;
    }
    default: {  // AAD
      const uint8_t base = env.instruction.insn.raw.imm[0].value.u & 0xFF;
      al = static_cast<uint8_t>(al + ah * base);
      flags |= parity_zero_sign(al);
      eax = (eax & 0xFFFF0000u) | al;
      break;
    }
  }
  s.eflags = flags;
  return next(env);
}

CalloutResult into(CalloutEnvironment& env) {
  if (env.state.eflags & eflags::kOf) return trap(env, vector::kOf);
  return next(env);
}

CalloutResult bound(CalloutEnvironment& env) {
  const auto& d = env.instruction;
  const int size = d.insn.operand_width / 8;
  const uint32_t address = effective_address(env.state, d, d.operands[1]);
  const SegReg seg = segment_of(d.operands[1].mem.segment);
  int32_t lower = 0, upper = 0;
  GuestException e;
  if (!read_segmented(env, seg, address, &lower, size, &e) ||
      !read_segmented(env, seg, address + size, &upper, size, &e)) {
    return memory_fault(e);
  }
  int32_t index = static_cast<int32_t>(read_gpr(env.state, d.operands[0].reg.value));
  if (size == 2) {
    lower = static_cast<int16_t>(lower);
    upper = static_cast<int16_t>(upper);
    index = static_cast<int16_t>(index);
  }
  if (index < lower || index > upper) return fault(vector::kBr);
  return next(env);
}

CalloutResult salc(CalloutEnvironment& env) {
  uint32_t& eax = env.state.reg(Gpr::kEax);
  eax = (eax & 0xFFFFFF00u) | ((env.state.eflags & eflags::kCf) ? 0xFF : 0);
  return next(env);
}

// Without an IDT the flat harness reports the software interrupt itself.
CalloutResult software_interrupt(CalloutEnvironment& env) {
  return trap(env, static_cast<uint8_t>(env.instruction.insn.raw.imm[0].value.u));
}

// The stack's size picks SP or ESP (and BP or EBP as the pointer into the
// old frames); the operand size picks the size of the pushed frame pointers
// and whether BP or EBP takes the new frame's: all of ESP after the first
// push, on a 16-bit stack too (measured on the host CPU: code16_test).
CalloutResult enter_nested(CalloutEnvironment& env) {
  const auto& d = env.instruction;
  const int size = d.insn.operand_width / 8;
  auto& s = env.state;
  const uint32_t frame_size = d.insn.raw.imm[0].value.u & 0xFFFF;
  const uint32_t level = d.insn.raw.imm[1].value.u & 0x1F;
  std::array<uint32_t, 33> pushes{};
  int n = 0;
  pushes[n++] = s.reg(Gpr::kEbp);
  const Segment& ss = s.segment(SegReg::kSs);
  const uint32_t frame = stack_moved(ss, s.reg(Gpr::kEsp), -size);
  uint32_t ebp = s.reg(Gpr::kEbp);
  GuestException e;
  for (uint32_t i = 1; i < level; ++i) {
    ebp = stack_moved(ss, ebp, -size);
    if (!read_segmented(env, SegReg::kSs, stack_offset(ss, ebp), &pushes[n++], size, &e)) {
      return memory_fault(e);
    }
  }
  pushes[n++] = frame;
  if (!push_all(env, pushes.data(), n, size, &e)) return memory_fault(e);
  uint32_t& ebp_out = s.reg(Gpr::kEbp);
  ebp_out = size == 2 ? (ebp_out & 0xFFFF0000u) | (frame & 0xFFFF) : frame;
  s.reg(Gpr::kEsp) = stack_moved(ss, s.reg(Gpr::kEsp), -static_cast<int32_t>(frame_size));
  return next(env);
}

// The arithmetic flags of a - b at this size (cmps, scas).
uint32_t compare_flags(uint32_t a, uint32_t b, uint32_t size) {
  const int bits = static_cast<int>(size * 8);
  const uint32_t mask = bits == 32 ? 0xFFFFFFFFu : (1u << bits) - 1;
  a &= mask;
  b &= mask;
  const uint32_t r = (a - b) & mask;
  const uint32_t sign = 1u << (bits - 1);
  uint32_t f = parity_zero_sign(static_cast<uint8_t>(r)) & eflags::kPf;
  if (r == 0) f |= eflags::kZf;
  if (r & sign) f |= eflags::kSf;
  if (a < b) f |= eflags::kCf;
  if ((a ^ b) & (a ^ r) & sign) f |= eflags::kOf;
  if ((a ^ b ^ r) & 0x10) f |= eflags::kAf;
  return f;
}

// Runs at most this many elements per callout, then leaves EIP at the
// instruction (a rep string is interruptible there), so events are taken
// and the host never spins on one guest instruction.
constexpr uint32_t kStringElementsPerCallout = 4096;

// movs, stos, lods, cmps and scas through segments translated code cannot
// reach with window pointers (TranslationMode::compensated). A fault leaves
// ESI, EDI and ECX at the element that faulted, as the hardware does.
CalloutResult string_instruction(CalloutEnvironment& env) {
  const auto& d = env.instruction;
  auto& s = env.state;
  const ZydisMnemonic m = d.mnemonic();
  SegReg source = SegReg::kDs;
  uint32_t size = 1;
  for (uint8_t i = 0; i < d.insn.operand_count; ++i) {
    const ZydisDecodedOperand& op = d.operands[i];
    if (op.type != ZYDIS_OPERAND_TYPE_MEMORY) continue;
    size = op.size / 8;
    if (op.mem.base == ZYDIS_REGISTER_ESI || op.mem.base == ZYDIS_REGISTER_SI) {
      source = segment_of(op.mem.segment);
    }
  }
  const bool movs =
      m == ZYDIS_MNEMONIC_MOVSB || m == ZYDIS_MNEMONIC_MOVSW || m == ZYDIS_MNEMONIC_MOVSD;
  const bool cmps =
      m == ZYDIS_MNEMONIC_CMPSB || m == ZYDIS_MNEMONIC_CMPSW || m == ZYDIS_MNEMONIC_CMPSD;
  const bool stos =
      m == ZYDIS_MNEMONIC_STOSB || m == ZYDIS_MNEMONIC_STOSW || m == ZYDIS_MNEMONIC_STOSD;
  const bool lods =
      m == ZYDIS_MNEMONIC_LODSB || m == ZYDIS_MNEMONIC_LODSW || m == ZYDIS_MNEMONIC_LODSD;
  const bool scas = !movs && !cmps && !stos && !lods;
  const bool repe = d.has_attribute(ZYDIS_ATTRIB_HAS_REPE);
  const bool repne = d.has_attribute(ZYDIS_ATTRIB_HAS_REPNE);
  const bool rep = repe || repne || d.has_attribute(ZYDIS_ATTRIB_HAS_REP);
  const uint32_t step = (s.eflags & eflags::kDf) ? 0u - size : size;
  const uint32_t value_mask = size == 4 ? 0xFFFFFFFFu : (1u << (size * 8)) - 1;
  uint32_t& eax = s.reg(Gpr::kEax);
  uint32_t& ecx = s.reg(Gpr::kEcx);
  uint32_t& esi = s.reg(Gpr::kEsi);
  uint32_t& edi = s.reg(Gpr::kEdi);
  // 16-bit addressing: SI, DI and CX alone, wrapping at 64 KiB.
  const uint32_t address_mask = d.insn.address_width == 16 ? 0xFFFFu : 0xFFFFFFFFu;
  const auto advance = [address_mask](uint32_t& r, uint32_t delta) {
    r = (r & ~address_mask) | ((r + delta) & address_mask);
  };
  GuestException e;
  for (uint32_t n = 0; n < kStringElementsPerCallout; ++n) {
    if (rep && (ecx & address_mask) == 0) return next(env);
    uint32_t a = 0, b = 0;
    if (movs || cmps || lods) {
      if (!read_segmented(env, source, esi & address_mask, &a, size, &e)) return memory_fault(e);
    }
    if (movs || stos) {
      const uint32_t value = movs ? a : (eax & value_mask);
      if (!write_segmented(env, SegReg::kEs, edi & address_mask, &value, size, &e)) {
        return memory_fault(e);
      }
    } else if (!lods) {
      if (!read_segmented(env, SegReg::kEs, edi & address_mask, &b, size, &e)) {
        return memory_fault(e);
      }
    }
    if (lods) eax = (eax & ~value_mask) | a;
    if (cmps || scas) {
      const uint32_t flags = cmps ? compare_flags(a, b, size) : compare_flags(eax, b, size);
      s.eflags = (s.eflags & ~eflags::kArith) | flags;
    }
    if (!stos && !scas) advance(esi, step);
    if (!lods) advance(edi, step);
    if (!rep) return next(env);
    advance(ecx, 0xFFFFFFFFu);
    const bool zf = (s.eflags & eflags::kZf) != 0;
    if ((cmps || scas) && ((repe && !zf) || (repne && zf))) return next(env);
  }
  return {};
}

constexpr CalloutSpec kCallouts[] = {
    {CalloutId::kNone, "none", unsupported, false, false},
    {CalloutId::kHalt, "hlt", halt, false, false},
    {CalloutId::kCpuid, "cpuid", cpuid, false, false},
    {CalloutId::kPusha, "pusha", pusha, true, false},
    {CalloutId::kPopa, "popa", popa, false, false},
    {CalloutId::kDecimalAdjust, "decimal-adjust", decimal_adjust, false, false},
    {CalloutId::kInto, "into", into, false, false},
    {CalloutId::kBound, "bound", bound, false, false},
    {CalloutId::kSalc, "salc", salc, false, false},
    {CalloutId::kSoftwareInterrupt, "int-n", software_interrupt, false, false},
    {CalloutId::kEnterNested, "enter-nested", enter_nested, true, false},
    {CalloutId::kSystem, "system", unsupported, false, false},
    {CalloutId::kTracedStore, "traced-store", unsupported, true, false},
    {CalloutId::kString, "string", string_instruction, true, false},
    {CalloutId::kUnsupported, "unsupported", unsupported, false, false},
};
static_assert(std::size(kCallouts) == static_cast<size_t>(CalloutId::kCount));

}  // namespace

const CalloutSpec& callout_spec(CalloutId id) {
  const auto& spec = kCallouts[static_cast<size_t>(id)];
  return spec;
}

}  // namespace bt86
