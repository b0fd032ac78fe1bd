#include "translator/unit_emitter.h"

#include <cstring>
#include <stdexcept>

#include "translator/ident_encoder.h"
#include "translator/vcpu_context.h"

namespace bt86 {
namespace {

using namespace asmjit;

// Guest EFLAGS bits the popf and iretd sequences sort (the arithmetic ones
// and DF live in host RFLAGS: kHostGuestFlags).
constexpr uint32_t kGuestTf = 1u << 8;
constexpr uint32_t kGuestIf = 1u << 9;
constexpr uint32_t kGuestIopl = 3u << 12;
constexpr uint32_t kGuestNt = 1u << 14;
constexpr uint32_t kGuestRf = 1u << 16;
constexpr uint32_t kGuestVm = 1u << 17;
constexpr uint32_t kGuestAc = 1u << 18;
constexpr uint32_t kGuestVif = 1u << 19;
constexpr uint32_t kGuestVip = 1u << 20;
constexpr uint32_t kGuestId = 1u << 21;
// What popf takes from its image into the virtual EFLAGS; the host-held
// flags and IF are loaded apart.
constexpr uint32_t kPopfLoads = kGuestTf | kGuestIopl | kGuestNt | kGuestAc | kGuestId;
constexpr uint32_t kPopfKeepsOld = kGuestVm | kGuestVif | kGuestVip;

x86::Mem ctx(int32_t offset, uint32_t size = 0) {
  return x86::ptr(x86::r15, offset, size);
}

x86::Mem guest(const x86::Gp& base, int32_t disp, uint32_t size) {
  x86::Mem m = x86::ptr(base, disp, size);
  m.setSegment(x86::gs);
  return m;
}

// r as a 16- or 32-bit register (size in bytes).
x86::Gp sized(const x86::Gp& r, int size) {
  return size == 2 ? x86::Gp(r.r16()) : x86::Gp(r.r32());
}

int gpr_index(ZydisRegister r) {
  if (r >= ZYDIS_REGISTER_EAX && r <= ZYDIS_REGISTER_EDI) return r - ZYDIS_REGISTER_EAX;
  if (r >= ZYDIS_REGISTER_AX && r <= ZYDIS_REGISTER_DI) return r - ZYDIS_REGISTER_AX;
  return -1;
}

// ES CS SS DS FS GS: the order of VcpuContext::selectors and Zydis's registers.
int segment_index(ZydisRegister r) {
  return r - ZYDIS_REGISTER_ES;
}

x86::Gp guest_gpr(ZydisRegister r) {
  int i = gpr_index(r);
  return (r >= ZYDIS_REGISTER_AX && r <= ZYDIS_REGISTER_DI) ? x86::Gp(x86::gpw(i))
                                                            : x86::Gp(x86::gpd(i));
}

bool is_bit_test_with_register_offset(const DecodedInstruction& d) {
  const ZydisMnemonic m = d.mnemonic();
  return (m == ZYDIS_MNEMONIC_BT || m == ZYDIS_MNEMONIC_BTS || m == ZYDIS_MNEMONIC_BTR ||
          m == ZYDIS_MNEMONIC_BTC) &&
         d.operands[0].type == ZYDIS_OPERAND_TYPE_MEMORY &&
         d.operands[1].type == ZYDIS_OPERAND_TYPE_REGISTER;
}

// A guest register the instruction neither names nor uses implicitly (and
// not ESP), which a compensated access may borrow for the linear address;
// -1 if there is none.
int free_guest_register(const DecodedInstruction& d) {
  uint32_t used = 1u << 4;
  const auto note = [&used](ZydisRegister r) {
    if (r == ZYDIS_REGISTER_NONE) return;
    const ZydisRegister whole = ZydisRegisterGetLargestEnclosing(ZYDIS_MACHINE_MODE_LEGACY_32, r);
    if (whole >= ZYDIS_REGISTER_EAX && whole <= ZYDIS_REGISTER_EDI) {
      used |= 1u << (whole - ZYDIS_REGISTER_EAX);
    }
  };
  for (uint8_t i = 0; i < d.insn.operand_count; ++i) {
    const ZydisDecodedOperand& op = d.operands[i];
    if (op.type == ZYDIS_OPERAND_TYPE_REGISTER) note(op.reg.value);
    if (op.type == ZYDIS_OPERAND_TYPE_MEMORY) {
      note(op.mem.base);
      note(op.mem.index);
    }
  }
  // EBP last: [ebp] needs a displacement byte.
  for (int r : {7, 6, 3, 2, 1, 0, 5}) {
    if ((used & (1u << r)) == 0) return r;
  }
  return -1;
}

// Whether the memory operand is accessed at all (lea computes an address,
// nop and prefetch never fault).
bool accesses_memory(const DecodedInstruction& d, const ZydisDecodedOperand& op) {
  switch (d.mnemonic()) {
    case ZYDIS_MNEMONIC_LEA:
    case ZYDIS_MNEMONIC_NOP:
    case ZYDIS_MNEMONIC_PREFETCHNTA:
    case ZYDIS_MNEMONIC_PREFETCHT0:
    case ZYDIS_MNEMONIC_PREFETCHT1:
    case ZYDIS_MNEMONIC_PREFETCHT2:
    case ZYDIS_MNEMONIC_PREFETCHW:
    case ZYDIS_MNEMONIC_PREFETCH:
      return false;
    default:
      return op.mem.type != ZYDIS_MEMOP_TYPE_AGEN;
  }
}

bool writes(const ZydisDecodedOperand& op) {
  return (op.actions & ZYDIS_OPERAND_ACTION_MASK_WRITE) != 0;
}

// Bytes the operand covers (bt with a register bit offset may reach beyond
// them: only its base operand is checked against the limit).
uint32_t access_size(const ZydisDecodedOperand& op) {
  return op.size >= 8 ? op.size / 8u : 1u;
}

enum class FpuClass { kNone, kX87, kWait, kMmx, kSse, kFxsave };

FpuClass fpu_class(const DecodedInstruction& d) {
  switch (d.mnemonic()) {
    case ZYDIS_MNEMONIC_FWAIT:
      return FpuClass::kWait;
    case ZYDIS_MNEMONIC_SFENCE:
    case ZYDIS_MNEMONIC_LFENCE:
    case ZYDIS_MNEMONIC_MFENCE:
    case ZYDIS_MNEMONIC_CLFLUSH:
    case ZYDIS_MNEMONIC_MOVNTI:
    case ZYDIS_MNEMONIC_PAUSE:
    case ZYDIS_MNEMONIC_PREFETCHNTA:
    case ZYDIS_MNEMONIC_PREFETCHT0:
    case ZYDIS_MNEMONIC_PREFETCHT1:
    case ZYDIS_MNEMONIC_PREFETCHT2:
      return FpuClass::kNone;
    default:
      break;
  }
  if (d.insn.meta.isa_set == ZYDIS_ISA_SET_FXSAVE) return FpuClass::kFxsave;
  switch (d.insn.meta.isa_ext) {
    case ZYDIS_ISA_EXT_X87:
      return FpuClass::kX87;
    case ZYDIS_ISA_EXT_MMX:
      return FpuClass::kMmx;
    case ZYDIS_ISA_EXT_SSE:
    case ZYDIS_ISA_EXT_SSE2:
    case ZYDIS_ISA_EXT_SSE3:
    case ZYDIS_ISA_EXT_SSE4:
    case ZYDIS_ISA_EXT_SSE4A:
    case ZYDIS_ISA_EXT_SSSE3:
    case ZYDIS_ISA_EXT_AES:
    case ZYDIS_ISA_EXT_PCLMULQDQ:
    case ZYDIS_ISA_EXT_SHA:
      return FpuClass::kSse;
    default:
      return FpuClass::kNone;
  }
}

// Whether the instruction reads or writes x87, MMX or SSE state, which must
// then be live (cache_stubs.h). The operand check catches what fpu_class()
// does not name (the XSAVE family, AVX): a miss here would run the guest
// instruction on the VMM's registers.
bool touches_fpu_state(const DecodedInstruction& d) {
  if (fpu_class(d) != FpuClass::kNone) return true;
  switch (d.insn.meta.isa_ext) {
    case ZYDIS_ISA_EXT_XSAVE:
    case ZYDIS_ISA_EXT_XSAVEC:
    case ZYDIS_ISA_EXT_XSAVEOPT:
    case ZYDIS_ISA_EXT_XSAVES:
      return true;
    default:
      break;
  }
  for (uint8_t i = 0; i < d.insn.operand_count; ++i) {
    const ZydisDecodedOperand& op = d.operands[i];
    if (op.type != ZYDIS_OPERAND_TYPE_REGISTER) continue;
    switch (ZydisRegisterGetClass(op.reg.value)) {
      case ZYDIS_REGCLASS_X87:
      case ZYDIS_REGCLASS_MMX:
      case ZYDIS_REGCLASS_XMM:
      case ZYDIS_REGCLASS_YMM:
      case ZYDIS_REGCLASS_ZMM:
      case ZYDIS_REGCLASS_MASK:
        return true;
      default:
        break;
    }
    switch (op.reg.value) {
      case ZYDIS_REGISTER_MXCSR:
      case ZYDIS_REGISTER_X87CONTROL:
      case ZYDIS_REGISTER_X87STATUS:
      case ZYDIS_REGISTER_X87TAG:
        return true;
      default:
        break;
    }
  }
  return false;
}

// The exception CR0.TS/EM/MP and CR4.OSFXSR make an instruction of this
// class raise (SDM Vol. 3A 2.5, Table 12-8 and 13-1), if any.
std::optional<uint8_t> fpu_exception(FpuClass fpu_kind, uint8_t fpu) {
  if (fpu == 0) return std::nullopt;
  const bool ts = fpu & fpu_mode::kTs, em = fpu & fpu_mode::kEm, mp = fpu & fpu_mode::kMp;
  switch (fpu_kind) {
    case FpuClass::kNone:
      return std::nullopt;
    case FpuClass::kWait:
      return ts && mp ? std::optional<uint8_t>(7) : std::nullopt;
    case FpuClass::kX87:
    case FpuClass::kFxsave:
      return ts || em ? std::optional<uint8_t>(7) : std::nullopt;
    case FpuClass::kMmx:
      if (em) return 6;
      return ts ? std::optional<uint8_t>(7) : std::nullopt;
    case FpuClass::kSse:
      if (em || (fpu & fpu_mode::kNoOsfxsr)) return 6;
      return ts ? std::optional<uint8_t>(7) : std::nullopt;
  }
  return std::nullopt;
}

}  // namespace

UnitEmitter::UnitEmitter(TranslationCache& cache) : cache_(cache) {}

void UnitEmitter::begin(uint64_t host_start, const UnitKey& key, const TranslationMode& mode,
                        uint64_t* execution_counter) {
  code_.reset();
  code_.init(Environment(Arch::kX64), host_start);
  code_.attach(&assembler_);
  mode_ = mode;
  code_limit_ = key.code_segment.limit;
  host_start_ = host_start;
  stubs_.clear();
  check_stubs_.clear();
  patch_offsets_.clear();
  direct_exit_ids_.clear();
  follows_side_exit_ = false;
  fpu_gate_emitted_ = false;
  variant_used_ = false;
  unit_ = std::make_unique<TranslationUnit>();
  const uint32_t guest_start = key.eip;
  unit_->id = cache_.next_unit_id();
  unit_->key = key;
  unit_->guest_start = guest_start;
  unit_->guest_end = guest_start;
  unit_->host_start = host_start;
  unit_->execution_counter = execution_counter;
  // Most units hold 16 instructions or fewer; growing the map one
  // reallocation at a time was a visible share of translation.
  unit_->instructions.reserve(16);
  auto& a = assembler_;
  // The poll load: faults once the runtime protects the poll page.
  a.mov(x86::r9d, ctx(ctx_offset::kPollPage, 4));
  unit_->loop_entry = host_start + a.offset();
  if (execution_counter != nullptr) begin_segment(execution_counter);
}

// Flags are guest state here, so the increment is a lea.
void UnitEmitter::begin_segment(uint64_t* counter) {
  auto& a = assembler_;
  unit_->segments.push_back(
      {counter, unit_->ident_count, unit_->compensated_count, unit_->callout_count});
  a.mov(x86::r9, Imm(reinterpret_cast<uint64_t>(counter)));
  a.mov(x86::r10, x86::qword_ptr(x86::r9));
  a.lea(x86::r10, x86::ptr(x86::r10, 1));
  a.mov(x86::qword_ptr(x86::r9), x86::r10);
}

void UnitEmitter::begin_instruction(const DecodedInstruction& d, TranslationKind kind) {
  InstructionMap m;
  m.guest_eip = d.eip;
  m.guest_length = d.length();
  m.kind = kind;
  m.host_begin = unit_->instructions.empty() ? 0 : static_cast<uint32_t>(assembler_.offset());
  unit_->instructions.push_back(std::move(m));
  if (follows_side_exit_ && unit_->execution_counter != nullptr) {
    begin_segment(cache_.new_execution_counter());
  }
  follows_side_exit_ = false;
  switch (kind) {
    case TranslationKind::kIdent:
      ++unit_->ident_count;
      break;
    case TranslationKind::kCompensated:
      ++unit_->compensated_count;
      break;
    case TranslationKind::kCallout:
      ++unit_->callout_count;
      break;
  }
}

void UnitEmitter::end_instruction(uint32_t next_guest) {
  unit_->instructions.back().host_end = static_cast<uint32_t>(assembler_.offset());
  unit_->guest_end = next_guest;
}

void UnitEmitter::add_recovery(uint32_t begin, Recovery recovery) {
  unit_->instructions.back().recoveries.push_back(
      {begin, static_cast<uint32_t>(assembler_.offset()), recovery});
}

void UnitEmitter::embed(const std::vector<uint8_t>& bytes) {
  assembler_.embed(bytes.data(), bytes.size());
}

void UnitEmitter::jump_to(uint64_t exec_address) {
  const uint64_t next = host_start_ + assembler_.offset() + 5;
  const int64_t rel = static_cast<int64_t>(exec_address - next);
  uint8_t b[5] = {0xE9};
  uint32_t r32 = static_cast<uint32_t>(rel);
  for (int i = 0; i < 4; ++i) b[1 + i] = static_cast<uint8_t>(r32 >> (8 * i));
  assembler_.embed(b, 5);
}

void UnitEmitter::direct_exit(std::optional<uint8_t> condition, uint32_t guest_target) {
  ExitRecord exit;
  exit.kind = ExitKind::kDirect;
  exit.guest_target = guest_target;
  exit.unit = unit_->id;
  const uint32_t id = cache_.add_exit(exit);
  Label stub = assembler_.newLabel();
  if (condition) {
    assembler_.long_().j(static_cast<x86::CondCode>(*condition), stub);
  } else {
    assembler_.long_().jmp(stub);
  }
  stubs_.push_back({stub, id, guest_target});
  patch_offsets_.push_back(static_cast<uint32_t>(assembler_.offset()));
  direct_exit_ids_.push_back(id);
  unit_->exits.push_back(id);
}

void UnitEmitter::leave_now(ExitRecord exit, uint32_t reported_eip) {
  exit.unit = unit_->id;
  const uint32_t id = cache_.add_exit(exit);
  unit_->exits.push_back(id);
  assembler_.mov(ctx(ctx_offset::kEip, 4), Imm(reported_eip));
  assembler_.mov(ctx(ctx_offset::kExitId, 4), Imm(id));
  jump_to(cache_.stubs().exit_common);
}

// Guest flags live in RFLAGS, so monitor code that compares parks them:
// SF ZF AF PF CF in AH (lahf), OF in AL (seto), with RAX saved in
// saved_rax; add al, 0x7F recreates OF and sahf the rest.
void UnitEmitter::park_flags(const x86::Gp& saved_rax) {
  auto& a = assembler_;
  a.mov(saved_rax, x86::rax);
  a.lahf();
  a.seto(x86::al);
}

void UnitEmitter::restore_flags(const x86::Gp& saved_rax) {
  auto& a = assembler_;
  a.add(x86::al, 0x7F);
  a.sahf();
  a.mov(x86::rax, saved_rax);
}

// The lookup parks the flags (RAX in r9) while it hashes and compares, and
// puts them back before leaving either way.
void UnitEmitter::indirect_jump() {
  auto& a = assembler_;
  if (mode_.single_instruction) {
    // A single-instruction unit must come back to the runtime after its
    // instruction (it runs with a traced page opened): no lookup.
    jump_to(cache_.stubs().indirect_miss);
    return;
  }
  Label miss = a.newLabel();
  park_flags(x86::r9);
  a.mov(x86::r10d, x86::r8d);
  a.and_(x86::r10d, Imm(IndirectLookupTable::kIndexMask));
  a.shl(x86::r10d, 4);
  a.add(x86::r10, ctx(ctx_offset::kLookupTable, 8));
  a.cmp(x86::dword_ptr(x86::r10), x86::r8d);
  a.jne(miss);
  restore_flags(x86::r9);
  a.jmp(x86::qword_ptr(x86::r10, 8));
  a.bind(miss);
  restore_flags(x86::r9);
  jump_to(cache_.stubs().indirect_miss);
}

uint8_t UnitEmitter::segment_prefix(const DecodedInstruction& d) const {
  const ZydisDecodedOperand* op = d.memory_operand();
  return op != nullptr && op->mem.segment == mode_.fs_segment ? kHostFsPrefix : kHostGsPrefix;
}

// The load that makes sti/popf leave the cache when the runtime has an
// interrupt waiting for IF (the page is protected then); the instruction is
// complete by the time it runs.
void UnitEmitter::load_interrupt_window(bool shadow) {
  const uint32_t begin = static_cast<uint32_t>(assembler_.offset());
  const int32_t offset = shadow ? 0 : ctx_offset::kInterruptWindowNoShadow;
  assembler_.mov(x86::r9d, ctx(ctx_offset::kInterruptWindowPage + offset, 4));
  add_recovery(begin, {Recovery::Kind::kCompleted, 0});
}

void UnitEmitter::raise_exception(uint32_t eip, uint8_t vector,
                                  std::optional<uint32_t> error_code) {
  ExitRecord exit;
  exit.kind = ExitKind::kException;
  exit.vector = vector;
  exit.error_code = error_code;
  exit.guest_target = eip;
  leave_now(exit, eip);
}

// r8 = the operand, zero-extended from 16 bits.
void UnitEmitter::load_operand_to_r8(const DecodedInstruction& d, const ZydisDecodedOperand& op) {
  if (op.size == 16) {
    load_selector(d, op);
  } else if (op.type == ZYDIS_OPERAND_TYPE_REGISTER) {
    assembler_.mov(x86::r8d, guest_gpr(op.reg.value));
  } else {
    access_memory_operand(d, {0x8B}, 8, false, 4, false);
  }
}

// Units are straight-line code entered at the top, so one pass through the
// gate before the first instruction that needs the state covers the rest.
// Part of the instruction's host range: a fault cannot happen in it, and
// the guest state is that before the instruction.
void UnitEmitter::emit_fpu_gate() {
  auto& a = assembler_;
  Label back = a.newLabel();
  a.lea(x86::r9, x86::ptr(back));
  a.mov(ctx(ctx_offset::kFpuReturn, 8), x86::r9);
  a.jmp(ctx(ctx_offset::kFpuGate, 8));
  a.bind(back);
  fpu_gate_emitted_ = true;
}

void UnitEmitter::push_value(Operand_ value, int size) {
  auto& a = assembler_;
  a.emit(x86::Inst::kIdMov, stack_slot(-size, size, true), value);
  move_stack_pointer(x86::esp, -size);
}

// A near call with 16-bit operand size pushes IP alone.
void UnitEmitter::push_return_address(const DecodedInstruction& d) {
  if (d.insn.operand_width == 16) {
    push_value(Imm(d.next_eip() & 0xFFFF), 2);
  } else {
    push_value(Imm(d.next_eip()), 4);
  }
}

// r14 carries the new SP on a 16-bit stack: a 16-bit mov leaves the upper
// half of ESP (and of RSP) alone, as the hardware does.
void UnitEmitter::move_stack_pointer(const x86::Gp& from, int32_t delta) {
  auto& a = assembler_;
  if (!mode_.stack_16) {
    a.lea(x86::esp, x86::ptr(from.r64(), delta));
    return;
  }
  a.lea(x86::r14d, x86::ptr(from.r64(), delta));
  a.mov(x86::sp, x86::r14w);
}

bool UnitEmitter::emit(const DecodedInstruction& d, const OpcodeEntry& entry) {
  auto& a = assembler_;
  if (mode_.timestamp_disabled && d.mnemonic() == ZYDIS_MNEMONIC_RDTSC) {
    return emit_callout(d, CalloutId::kSystem);
  }
  const ZydisDecodedOperand* memory = d.memory_operand();
  const bool accesses = memory != nullptr && accesses_memory(d, *memory);
  const ZydisRegister segment = accesses ? memory->mem.segment : ZYDIS_REGISTER_NONE;
  const bool names_variant = accesses && mode_.is_variant_segment(segment);
  const FpuClass fpu_kind = fpu_class(d);
  variant_used_ = variant_used_ || names_variant || fpu_kind != FpuClass::kNone;
  std::optional<uint8_t> vector = fpu_exception(fpu_kind, mode_.fpu);
  // Code segments are never writable; a compensated CS fails its check.
  if (!vector && segment == ZYDIS_REGISTER_CS && writes(*memory) && !mode_.compensates(segment)) {
    vector = 13;
  }
  if (vector) {
    begin_instruction(d, TranslationKind::kCompensated);
    raise_exception(d.eip, *vector, *vector == 13 ? std::optional<uint32_t>(0) : std::nullopt);
    end_instruction(d.next_eip());
    return true;
  }
  if (d.insn.address_width == 16 && entry.emitter == Emitter::kIdent &&
      (d.mnemonic() == ZYDIS_MNEMONIC_LEA || (memory != nullptr && !accesses))) {
    return emit_without_access_16(d);
  }
  const bool compensated = accesses && compensates_access(d, segment);
  TranslationKind kind = entry.kind;
  if (compensated && kind == TranslationKind::kIdent) kind = TranslationKind::kCompensated;
  begin_instruction(d, kind);
  if (!fpu_gate_emitted_ && touches_fpu_state(d)) emit_fpu_gate();
  if (compensated && entry.emitter == Emitter::kIdent) {
    if (!emit_compensated_ident(d, *memory)) return emit_callout(d, CalloutId::kUnsupported);
    end_instruction(d.next_eip());
    return false;
  }
  bool ends = false;
  const int width = d.insn.operand_width / 8;
  switch (entry.emitter) {
    case Emitter::kIdent:
      scratch_.clear();
      encode_ident(d, scratch_, segment_prefix(d));
      embed(scratch_);
      break;
    case Emitter::kJmpRelative:
    case Emitter::kCallRelative:
      if (beyond_code_limit(d.branch_target())) {
        raise_exception(d.eip, 13, 0);
      } else {
        if (entry.emitter == Emitter::kCallRelative) push_return_address(d);
        direct_exit(std::nullopt, d.branch_target());
      }
      ends = true;
      break;
    case Emitter::kJcc: {
      // Taken: a side exit. Not taken: the unit goes on (a superblock),
      // except in single-instruction units, which must stop after one.
      const auto condition = static_cast<uint8_t>(d.insn.opcode & 0xF);
      if (beyond_code_limit(d.branch_target())) {
        raise_if(condition, 13);
      } else {
        direct_exit(condition, d.branch_target());
      }
      if (mode_.single_instruction) {
        direct_exit(std::nullopt, d.next_eip());
        ends = true;
      } else {
        follows_side_exit_ = true;
      }
      break;
    }
    case Emitter::kCounterBranch: {
      // jecxz/loop only have rel8 forms: hop over the 5-byte not-taken exit.
      // A CX counter (16-bit addressing) runs zero-extended in ECX, which
      // tests and counts as CX does (CX = 0 counts to 0xFFFFFFFF, not 0),
      // and the upper half comes back from r11 on both paths, flag-free.
      const bool counts =
          d.mnemonic() != ZYDIS_MNEMONIC_JECXZ && d.mnemonic() != ZYDIS_MNEMONIC_JCXZ;
      const bool cx = d.insn.address_width == 16;
      static constexpr uint8_t kRestoreEcx[] = {0x66, 0x41, 0x89, 0xCB,  // mov r11w, cx
                                                0x44, 0x89, 0xD9};       // mov ecx, r11d
      if (cx) {
        a.mov(x86::r11d, x86::ecx);
        a.movzx(x86::ecx, x86::cx);
      }
      const uint8_t bytes[] = {0x67, d.insn.opcode,
                               static_cast<uint8_t>(cx ? 5 + sizeof kRestoreEcx : 5)};
      a.embed(bytes, sizeof bytes);
      if (cx) a.embed(kRestoreEcx, sizeof kRestoreEcx);
      direct_exit(std::nullopt, d.next_eip());
      if (cx) a.embed(kRestoreEcx, sizeof kRestoreEcx);
      if (beyond_code_limit(d.branch_target())) {
        // The loop forms have counted the counter down by now: undo it.
        if (counts && cx) {
          a.lea(x86::r11d, x86::ptr(x86::rcx, 1));
          a.mov(x86::cx, x86::r11w);
        } else if (counts) {
          a.lea(x86::ecx, x86::ptr(x86::rcx, 1));
        }
        raise_exception(d.eip, 13, 0);
      } else {
        direct_exit(std::nullopt, d.branch_target());
      }
      ends = true;
      break;
    }
    case Emitter::kRet: {
      const uint32_t release = d.insn.raw.imm[0].size != 0 ? d.insn.raw.imm[0].value.u & 0xFFFF : 0;
      if (width == 2) {
        a.movzx(x86::r8d, stack_slot(0, 2, false));
      } else {
        a.mov(x86::r8d, stack_slot(0, 4, false));
      }
      check_code_target();
      move_stack_pointer(x86::esp, static_cast<int32_t>(width + release));
      indirect_jump();
      ends = true;
      break;
    }
    case Emitter::kJmpIndirect:
      load_operand_to_r8(d, d.operands[0]);
      check_code_target();
      indirect_jump();
      ends = true;
      break;
    case Emitter::kCallIndirect:
      load_operand_to_r8(d, d.operands[0]);
      check_code_target();
      push_return_address(d);
      indirect_jump();
      ends = true;
      break;
    case Emitter::kPush:
      ends = emit_push(d);
      break;
    case Emitter::kPushSegment:
      emit_push_segment(d);
      break;
    case Emitter::kMoveFromSegment:
      emit_move_from_segment(d);
      break;
    case Emitter::kLoadSegment:
      emit_load_segment(d);
      break;
    case Emitter::kVerw:
      emit_verw(d);
      break;
    case Emitter::kPop:
      ends = emit_pop(d);
      break;
    case Emitter::kPushAll:
      ends = emit_push_all(d);
      break;
    case Emitter::kPopAll:
      ends = emit_pop_all(d);
      break;
    case Emitter::kPushf:
      ends = emit_pushf(d);
      break;
    case Emitter::kPopf:
      ends = emit_popf(d);
      break;
    case Emitter::kEnter: {
      // The operand size picks BP or EBP, which takes the stack pointer
      // after the push: on a 16-bit stack a 32-bit enter copies all of ESP,
      // its kept upper half included, as the hardware does.
      push_value(sized(x86::rbp, width), width);
      if (width == 2) {
        a.mov(x86::bp, x86::sp);
      } else {
        a.mov(x86::ebp, x86::esp);
      }
      move_stack_pointer(x86::esp, -static_cast<int32_t>(d.insn.raw.imm[0].value.u));
      break;
    }
    case Emitter::kLeave:
      // The stack pointer takes (E)BP by the stack's size, BP or EBP the
      // popped value by the operand size.
      if (width == 2) {
        a.movzx(x86::r9d, stack_slot(x86::ebp, 0, 2, false));
        move_stack_pointer(x86::ebp, 2);
        a.mov(x86::bp, x86::r9w);
      } else {
        a.mov(x86::r9d, stack_slot(x86::ebp, 0, 4, false));
        move_stack_pointer(x86::ebp, 4);
        a.mov(x86::ebp, x86::r9d);
      }
      break;
    case Emitter::kCli:
    case Emitter::kSti:
      if (mode_.if_sensitive) {
        raise_exception(d.eip, 13, 0);
        ends = true;
        break;
      }
      a.mov(ctx(ctx_offset::kVirtualIf, 1), Imm(entry.emitter == Emitter::kSti ? 1 : 0));
      if (entry.emitter == Emitter::kSti) load_interrupt_window(true);
      break;
    case Emitter::kString:
      ends = emit_string(d);
      break;
    case Emitter::kIret:
      ends = emit_iret(d);
      break;
    case Emitter::kBreakpoint: {
      ExitRecord exit;
      exit.kind = ExitKind::kException;
      exit.vector = 3;
      exit.guest_target = d.next_eip();
      leave_now(exit, d.next_eip());
      ends = true;
      break;
    }
    case Emitter::kUndefined:
      raise_exception(d.eip, 6, std::nullopt);
      ends = true;
      break;
    case Emitter::kCallout:
      unit_->instructions.pop_back();
      --unit_->callout_count;
      return emit_callout(d, entry.callout);
  }
  end_instruction(d.next_eip());
  return ends;
}

bool UnitEmitter::emit_callout(const DecodedInstruction& d, CalloutId id) {
  if (unit_->instructions.empty() || unit_->instructions.back().guest_eip != d.eip) {
    begin_instruction(d, TranslationKind::kCallout);
  } else {
    // Re-routed from a compensated emitter: count it as a callout instead.
    auto& m = unit_->instructions.back();
    if (m.kind == TranslationKind::kCompensated) --unit_->compensated_count;
    if (m.kind == TranslationKind::kIdent) --unit_->ident_count;
    m.kind = TranslationKind::kCallout;
    ++unit_->callout_count;
  }
  leave_for_callout(d, id);
  end_instruction(d.next_eip());
  return true;
}

bool UnitEmitter::emit_push(const DecodedInstruction& d) {
  const auto& op = d.operands[0];
  const int size = d.insn.operand_width / 8;
  if (op.type == ZYDIS_OPERAND_TYPE_REGISTER) {
    if (gpr_index(op.reg.value) < 0) return emit_callout(d, CalloutId::kUnsupported);
    push_value(guest_gpr(op.reg.value), size);
  } else if (op.type == ZYDIS_OPERAND_TYPE_IMMEDIATE) {
    const uint32_t v = static_cast<uint32_t>(op.imm.value.s);
    push_value(Imm(size == 2 ? (v & 0xFFFF) : v), size);
  } else {
    access_memory_operand(d, {0x8B}, 8, size == 2, size, false);
    push_value(sized(x86::r8, size), size);
  }
  return false;
}

// A 32-bit push stores the selector zero-extended, as the host CPU does (the
// SDM also allows a 16-bit store that leaves the upper half alone; the
// differential test holds the translation to the host's choice).
void UnitEmitter::emit_push_segment(const DecodedInstruction& d) {
  const int size = d.insn.operand_width / 8;
  assembler_.movzx(x86::r8d, ctx(ctx_offset::selector(segment_index(d.operands[0].reg.value)), 2));
  push_value(sized(x86::r8, size), size);
}

// A register destination gets the selector zero-extended with a 32-bit
// operand size, its low half otherwise; memory always takes 16 bits.
void UnitEmitter::emit_move_from_segment(const DecodedInstruction& d) {
  auto& a = assembler_;
  const ZydisDecodedOperand& dst = d.operands[0];
  const x86::Mem selector = ctx(ctx_offset::selector(segment_index(d.operands[1].reg.value)), 2);
  if (dst.type == ZYDIS_OPERAND_TYPE_REGISTER) {
    const uint32_t index = static_cast<uint32_t>(gpr_index(dst.reg.value));
    if (d.insn.operand_width == 32) {
      a.movzx(x86::gpd(index), selector);
    } else {
      a.mov(x86::gpw(index), selector);
    }
    return;
  }
  a.movzx(x86::r8d, selector);
  access_memory_operand(d, {0x89}, 8, true, 2, true);
}

// Linux reloads DS and ES with the selectors they already hold on every
// kernel entry and pops them on the way out of an interrupt, and it switches
// FS between the user's selector and its per-CPU segment on every entry and
// exit. A reload the runtime has found to change nothing
// (VcpuContext::reload_selectors) is done at once. A load of FS or GS the
// runtime has prepared (VcpuContext::segment_switches) installs the prepared
// state and ends the unit through the lookup table of the new translation
// mode. Anything else leaves as the kSystem callout that does the full load.
void UnitEmitter::emit_load_segment(const DecodedInstruction& d) {
  auto& a = assembler_;
  const bool pop = d.mnemonic() == ZYDIS_MNEMONIC_POP;
  const ZydisRegister reg = d.operands[0].reg.value;
  const int seg = segment_index(reg);
  const int32_t release = pop ? d.insn.operand_width / 8 : 0;
  if (pop) {
    a.movzx(x86::r8d, stack_slot(0, 2, false));
  } else {
    load_selector(d, d.operands[1]);
  }
  Label unchanged = a.newLabel(), prepared = a.newLabel();
  jump_if_selector_is(ctx_offset::reload_selector(seg), unchanged);
  const bool may_switch =
      (reg == ZYDIS_REGISTER_FS || reg == ZYDIS_REGISTER_GS) && !mode_.single_instruction;
  const int slot = reg == ZYDIS_REGISTER_FS ? 0 : 1;
  if (may_switch) jump_if_selector_is(ctx_offset::switch_selector(slot), prepared);
  leave_for_callout(d, CalloutId::kSystem);
  if (may_switch) {
    a.bind(prepared);
    a.xchg(x86::rcx, x86::r9);
    if (release != 0) move_stack_pointer(x86::esp, release);
    // The offer and the current state trade places: the next switch of this
    // register goes back. The other register's offer assumed this one as it
    // was, so it is withdrawn.
    a.movzx(x86::r9d, ctx(ctx_offset::selector(seg), 2));
    a.mov(ctx(ctx_offset::switch_selector(slot), 4), x86::r9d);
    a.mov(ctx(ctx_offset::selector(seg), 2), x86::r8w);
    a.mov(ctx(ctx_offset::reload_selector(seg), 4), x86::r8d);
    a.mov(ctx(ctx_offset::switch_selector(1 - slot), 4), Imm(kNoReload));
    swap_context_qwords(ctx_offset::switch_fs_window_base(slot), ctx_offset::kFsWindowBase);
    a.wrfsbase(x86::r9);
    swap_context_qwords(ctx_offset::switch_lookup_table(slot), ctx_offset::kLookupTable);
    for (int32_t q = 0; q < int32_t{2 * sizeof(VcpuContext::SegmentCheck)}; q += 8) {
      swap_context_qwords(ctx_offset::switch_fs_gs_checks(slot) + q, ctx_offset::kFsGsChecks + q);
    }
    a.mov(ctx(ctx_offset::kSegmentsSwitched, 1), Imm(1));
    a.mov(x86::r8d, Imm(d.next_eip()));
    indirect_jump();
  }
  a.bind(unchanged);
  a.xchg(x86::rcx, x86::r9);
  if (release != 0) move_stack_pointer(x86::esp, release);
}

// Linux runs verw on every return to user space (the MDS buffer clear). When
// the operand is the selector the runtime has checked to be writable at this
// CPL (VcpuContext::verw_selector), ZF is set in place; otherwise the
// instruction leaves as the kSystem callout that reads the descriptor.
void UnitEmitter::emit_verw(const DecodedInstruction& d) {
  auto& a = assembler_;
  load_selector(d, d.operands[0]);
  Label writable = a.newLabel();
  jump_if_selector_is(ctx_offset::kVerwSelector, writable);
  leave_for_callout(d, CalloutId::kSystem);
  a.bind(writable);
  a.xchg(x86::rcx, x86::r9);
  a.mov(x86::r9, x86::rsp);
  a.lea(x86::rsp, ctx(ctx_offset::kScratchStackTop));
  a.pushfq();
  a.or_(x86::qword_ptr(x86::rsp), Imm(0x40));  // ZF; every other flag comes back as it was.
  a.popfq();
  a.mov(x86::rsp, x86::r9);
}

// r8 = the 16-bit (selector) operand, zero-extended.
void UnitEmitter::load_selector(const DecodedInstruction& d, const ZydisDecodedOperand& src) {
  auto& a = assembler_;
  if (src.type == ZYDIS_OPERAND_TYPE_REGISTER) {
    a.movzx(x86::r8d, x86::gpw(static_cast<uint32_t>(gpr_index(src.reg.value))));
  } else {
    access_memory_operand(d, {0x0F, 0xB7}, 8, false, 2, false);  // movzx
  }
}

// Jumps to target if r8 equals the 32-bit value at expected_offset in the
// context, keeping r8. Guest flags live in RFLAGS, so the test is
// flag-neutral: r9 = expected - r8 by not and lea, tested for zero by jrcxz
// with RCX swapped into r9. Both paths continue with RCX in r9: the code at
// target and after the jump must swap it back.
void UnitEmitter::jump_if_selector_is(int32_t expected_offset, Label target) {
  auto& a = assembler_;
  a.mov(x86::r9d, ctx(expected_offset, 4));
  a.not_(x86::r8);
  a.lea(x86::r9, x86::ptr(x86::r9, x86::r8, 0, 1));
  a.not_(x86::r8);
  a.xchg(x86::rcx, x86::r9);
  a.jecxz(x86::rcx, target);
  a.xchg(x86::rcx, x86::r9);
}

void UnitEmitter::leave_for_callout(const DecodedInstruction& d, CalloutId id) {
  ExitRecord exit;
  exit.kind = ExitKind::kCallout;
  exit.callout = id;
  exit.guest_target = d.eip;
  leave_now(exit, d.eip);
}

bool UnitEmitter::emit_pop(const DecodedInstruction& d) {
  auto& a = assembler_;
  const auto& op = d.operands[0];
  const int size = d.insn.operand_width / 8;
  if (op.type == ZYDIS_OPERAND_TYPE_REGISTER) {
    const int index = gpr_index(op.reg.value);
    if (index < 0) return emit_callout(d, CalloutId::kUnsupported);
    a.mov(guest_gpr(op.reg.value), stack_slot(0, size, false));
    // pop esp: the loaded value wins over the increment.
    if (index != 4) move_stack_pointer(x86::esp, size);
    return false;
  }
  a.mov(sized(x86::r8, size), stack_slot(0, size, false));
  move_stack_pointer(x86::esp, size);
  // The destination address uses the incremented ESP, as on hardware; if the
  // store faults, the pop has not happened.
  const uint32_t store_begin = static_cast<uint32_t>(a.offset());
  access_memory_operand(d, {0x89}, 8, size == 2, size, true, -size);
  add_recovery(store_begin,
               {mode_.stack_16 ? Recovery::Kind::kSpAdjust : Recovery::Kind::kEspAdjust, -size});
  return false;
}

// pusha/pushad: the eight stores in the hardware's order (EAX at the top,
// the (E)SP slot holding the value before the instruction), then the stack
// pointer moves, so a fault leaves every register as it was and the memory
// as the hardware leaves it. Stacks that are compensated (a base, a limit,
// 16 bits) take the callout.
bool UnitEmitter::emit_push_all(const DecodedInstruction& d) {
  if (mode_.compensates(ZYDIS_REGISTER_SS) || mode_.stack_16) {
    return emit_callout(d, CalloutId::kPusha);
  }
  const int size = d.insn.operand_width / 8;
  for (uint32_t i = 0; i < 8; ++i) {
    assembler_.mov(stack_slot(-size * static_cast<int32_t>(i + 1), size, true),
                   sized(x86::gpq(i), size));
  }
  move_stack_pointer(x86::esp, -8 * size);
  return false;
}

// popa/popad: the slots are loaded in the hardware's order (EDI from the
// bottom up) into scratch registers, and only then copied to the guest's, so
// a fault is reported at the address the hardware reports and leaves every
// register as it was. The (E)SP slot is skipped, as on hardware.
bool UnitEmitter::emit_pop_all(const DecodedInstruction& d) {
  if (mode_.compensates(ZYDIS_REGISTER_SS) || mode_.stack_16) {
    return emit_callout(d, CalloutId::kPopa);
  }
  auto& a = assembler_;
  const int size = d.insn.operand_width / 8;
  // Slot i from the bottom holds guest register 7 - i; slot 3 is (E)SP's.
  const x86::Gp scratch[8] = {x86::r8,  x86::r9,  x86::r10, {},
                              x86::r11, x86::r12, x86::r13, x86::r14};
  for (uint32_t i = 0; i < 8; ++i) {
    if (i == 3) continue;
    a.mov(sized(scratch[i], size), stack_slot(size * static_cast<int32_t>(i), size, false));
  }
  for (uint32_t i = 0; i < 8; ++i) {
    if (i == 3) continue;
    a.mov(sized(x86::gpq(7 - i), size), sized(scratch[i], size));
  }
  move_stack_pointer(x86::esp, 8 * size);
  return false;
}

// pushfq/popfq run on VcpuContext::scratch_stack: the only way to read or
// write all of RFLAGS without touching the guest stack.
bool UnitEmitter::emit_pushf(const DecodedInstruction& d) {
  auto& a = assembler_;
  const int size = d.insn.operand_width / 8;
  a.mov(x86::r9, x86::rsp);
  a.lea(x86::rsp, ctx(ctx_offset::kScratchStackTop));
  a.pushfq();
  a.mov(x86::r10, x86::qword_ptr(x86::rsp));
  a.and_(x86::r10d, Imm(kHostGuestFlags));
  a.or_(x86::r10d, ctx(ctx_offset::kVirtualEflags, 4));
  a.movzx(x86::r11d, ctx(ctx_offset::kVirtualIf, 1));
  a.shl(x86::r11d, 9);
  a.or_(x86::r10d, x86::r11d);
  a.popfq();
  a.mov(x86::rsp, x86::r9);
  push_value(sized(x86::r10, size), size);
  return false;
}

bool UnitEmitter::emit_popf(const DecodedInstruction& d) {
  auto& a = assembler_;
  const int size = d.insn.operand_width / 8;
  // The bits popf loads from the image beside the host-held ones and IF;
  // VM, VIF, VIP, the reserved bits and (16-bit) the upper half keep their
  // old values, IOPL too above CPL 0, and RF is cleared.
  uint32_t from_image = kPopfLoads;
  uint32_t keep_old = size == 2 ? 0xFFFF0000u : kPopfKeepsOld;
  if (mode_.cpl > 0) {
    from_image &= ~kGuestIopl;
    keep_old |= kGuestIopl;
  }
  if (size == 2) from_image &= 0xFFFFu;
  if (size == 2) {
    a.movzx(x86::r10d, stack_slot(0, 2, false));
  } else {
    a.mov(x86::r10d, stack_slot(0, 4, false));
  }
  move_stack_pointer(x86::esp, size);
  if (!mode_.if_sensitive) store_virtual_if(x86::r10d, x86::r11d);
  a.mov(x86::r11d, x86::r10d);
  a.and_(x86::r11d, Imm(from_image));
  a.mov(x86::r8d, ctx(ctx_offset::kVirtualEflags, 4));
  a.and_(x86::r8d, Imm(keep_old));
  a.or_(x86::r11d, x86::r8d);
  a.or_(x86::r11d, Imm(2));
  a.mov(ctx(ctx_offset::kVirtualEflags, 4), x86::r11d);
  Label sets_tf = a.newLabel();
  Label done = a.newLabel();
  a.test(x86::r11d, Imm(kGuestTf));  // Host flags are still scratch here.
  a.jnz(sets_tf);
  load_host_flags(x86::r10);
  if (!mode_.if_sensitive) load_interrupt_window(false);
  a.jmp(done);
  // TF set: the runtime single-steps from the next instruction on, so the
  // cache is left there (through the lookup miss, which nothing links).
  a.bind(sets_tf);
  load_host_flags(x86::r10);
  a.mov(x86::r8d, Imm(d.next_eip()));
  jump_to(cache_.stubs().indirect_miss);
  a.bind(done);
  return false;
}

// Virtual IF = bit 9 of image (through scratch); host flags are clobbered.
void UnitEmitter::store_virtual_if(const x86::Gp& image, const x86::Gp& scratch) {
  auto& a = assembler_;
  a.mov(scratch, image);
  a.shr(scratch, 9);
  a.and_(scratch, 1);
  a.mov(ctx(ctx_offset::kVirtualIf, 1), scratch.r8());
}

// RFLAGS = the guest-held flags of image (popfq on the scratch stack; r9
// holds RSP meanwhile). Clobbers image.
void UnitEmitter::load_host_flags(const x86::Gp& image) {
  auto& a = assembler_;
  a.and_(image.r32(), Imm(kHostGuestFlags));
  a.mov(x86::r9, x86::rsp);
  a.lea(x86::rsp, ctx(ctx_offset::kScratchStackTop));
  a.push(image.r64());
  a.popfq();
  a.mov(x86::rsp, x86::r9);
}

// iretd at CPL 0 back to the code segment it runs in: Linux's return from
// an exception or interrupt that hit the kernel, and sync_core()'s iret to
// itself after every early text patch (tens of thousands per boot). The
// three pops and the flags stay in the cache when the runtime vouches that
// reloading CS changes nothing (VcpuContext::reload_selectors: same
// selector, same descriptor in memory, same CPL). A task return (NT), VM,
// TF or RF in the image, another selector, a target past the limit, or IF
// set in the image while an interrupt waits for it (iret has no interrupt
// shadow: it is taken before the target's first instruction) take the
// callout, which finds the instruction not begun.
bool UnitEmitter::emit_iret(const DecodedInstruction& d) {
  if (mode_.cpl != 0 || d.insn.operand_width != 32 || mode_.compensates(ZYDIS_REGISTER_SS)) {
    return emit_callout(d, CalloutId::kSystem);
  }
  constexpr uint32_t kCs = 1;
  constexpr uint32_t kSlowImage = kGuestTf | kGuestNt | kGuestRf | kGuestVm;
  // What iretd at CPL 0 loads besides the host-held flags, IF and the bits
  // that send it to the callout: IOPL, AC, VIF, VIP, ID.
  constexpr uint32_t kVirtualImage = kGuestIopl | kGuestAc | kGuestVif | kGuestVip | kGuestId;
  auto& a = assembler_;
  Label slow = a.newLabel();
  a.mov(x86::r8d, stack_slot(0, 4, false));
  // All of each slot is read, as the hardware does (a frame can end on a
  // page boundary): the selector is its low half.
  a.mov(x86::r10d, stack_slot(4, 4, false));
  a.movzx(x86::r10d, x86::r10w);
  a.mov(x86::r11d, stack_slot(8, 4, false));
  park_flags(x86::r12);
  a.cmp(x86::r10d, ctx(ctx_offset::reload_selector(kCs), 4));
  a.jne(slow);
  a.test(ctx(ctx_offset::kVirtualEflags, 4), Imm(kGuestNt));
  a.jnz(slow);
  a.test(x86::r11d, Imm(kSlowImage));
  a.jnz(slow);
  Label no_window = a.newLabel();
  a.test(x86::r11d, Imm(kGuestIf));
  a.jz(no_window);
  a.cmp(ctx(ctx_offset::kInterruptWindowArmed, 1), 0);
  a.jne(slow);
  a.bind(no_window);
  if (code_limit_ != 0xFFFFFFFF) {
    a.cmp(x86::r8d, Imm(code_limit_));
    a.ja(slow);
  }
  restore_flags(x86::r12);
  move_stack_pointer(x86::esp, 12);
  // From here to popfq nothing can fault: host flags are scratch.
  store_virtual_if(x86::r11d, x86::r9d);
  a.mov(x86::r9d, x86::r11d);
  a.and_(x86::r9d, Imm(kVirtualImage));
  a.or_(x86::r9d, Imm(2));
  a.mov(ctx(ctx_offset::kVirtualEflags, 4), x86::r9d);
  load_host_flags(x86::r11);
  indirect_jump();
  a.bind(slow);
  restore_flags(x86::r12);
  leave_for_callout(d, CalloutId::kSystem);
  return true;
}

// String instructions run as host string instructions with 64-bit
// addressing over window pointers: RSI/RDI are rebased onto the window
// around the instruction (lea, so flags survive), RCX (upper half zero)
// counts, host DF is guest DF. A fault mid-instruction leaves RSI/RDI/RCX
// at the faulting element; the kStringWindowBased recipe rebases them back.
bool UnitEmitter::emit_string(const DecodedInstruction& d) {
  auto& a = assembler_;
  const ZydisMnemonic m = d.mnemonic();
  const bool uses_source =
      !(m == ZYDIS_MNEMONIC_STOSB || m == ZYDIS_MNEMONIC_STOSW || m == ZYDIS_MNEMONIC_STOSD ||
        m == ZYDIS_MNEMONIC_SCASB || m == ZYDIS_MNEMONIC_SCASW || m == ZYDIS_MNEMONIC_SCASD);
  const bool uses_destination =
      !(m == ZYDIS_MNEMONIC_LODSB || m == ZYDIS_MNEMONIC_LODSW || m == ZYDIS_MNEMONIC_LODSD);
  for (uint8_t i = 0; i < d.insn.operand_count; ++i) {
    const ZydisDecodedOperand& operand = d.operands[i];
    if (operand.type != ZYDIS_OPERAND_TYPE_MEMORY) continue;
    variant_used_ = variant_used_ || mode_.is_variant_segment(operand.mem.segment);
    // Window pointers cannot carry a base or stop at a limit: the string
    // runs in C++, element by element. The routed FS/GS has a base too,
    // which a window pointer would drop; no compiler emits string sources
    // through it.
    if (compensates_access(d, operand.mem.segment) || operand.mem.segment == mode_.fs_segment) {
      return emit_callout(d, CalloutId::kString);
    }
  }
  const bool rep = d.has_attribute(ZYDIS_ATTRIB_HAS_REP) || d.has_attribute(ZYDIS_ATTRIB_HAS_REPE);
  const bool repne = d.has_attribute(ZYDIS_ATTRIB_HAS_REPNE);
  if (rep || repne) check_string_stays_in_window(d, uses_source, uses_destination);
  std::vector<uint8_t> op;
  if (rep) {
    op.push_back(0xF3);
  } else if (repne) {
    op.push_back(0xF2);
  }
  if (d.insn.operand_width == 16) op.push_back(0x66);
  op.push_back(d.insn.opcode);
  a.mov(x86::r9, ctx(ctx_offset::kWindowBase, 8));
  if (uses_source) a.lea(x86::rsi, x86::ptr(x86::rsi, x86::r9));
  if (uses_destination) a.lea(x86::rdi, x86::ptr(x86::rdi, x86::r9));
  const uint32_t begin = static_cast<uint32_t>(a.offset());
  embed(op);
  // Only the registers rebased above hold window pointers at a fault.
  const Recovery::Kind recovery = uses_source && uses_destination
                                      ? Recovery::Kind::kStringWindowBased
                                  : uses_source ? Recovery::Kind::kStringSourceWindowBased
                                                : Recovery::Kind::kStringDestinationWindowBased;
  add_recovery(begin, {recovery, 0});
  a.mov(x86::r9, ctx(ctx_offset::kNegativeWindowBase, 8));
  if (uses_source) {
    a.lea(x86::rsi, x86::ptr(x86::rsi, x86::r9));
    a.mov(x86::esi, x86::esi);
  }
  if (uses_destination) {
    a.lea(x86::rdi, x86::ptr(x86::rdi, x86::r9));
    a.mov(x86::edi, x86::edi);
  }
  return false;
}

// Window pointers are 64-bit: where the guest's ESI or EDI would wrap at
// 0, a host rep string would run on below the window into the VMM's own
// memory. Forwards, the mirror of the window above it wraps at 4 GiB as the
// guest does, up to 8 GiB. A rep string whose elements could leave that in
// its direction leaves for the string callout, which wraps as the hardware
// does. With B = ECX * element size, forwards is safe when pointer + B <
// 8 GiB and backwards when pointer + element size >= B; DF, which nothing
// here changes, is read only when just one of them holds. strlen's repne
// scasb with ECX = ~0 is safe forwards only, so it pays the DF read.
// Elsewhere both directions are safe, where the check costs a few cycles
// against a host rep string's tens.
void UnitEmitter::check_string_stays_in_window(const DecodedInstruction& d, bool uses_source,
                                               bool uses_destination) {
  auto& a = assembler_;
  const uint32_t size = d.insn.operand_width / 8;
  std::vector<x86::Gpd> pointers;
  if (uses_source) pointers.push_back(x86::esi);
  if (uses_destination) pointers.push_back(x86::edi);
  Label forward_unsafe = a.newLabel(), needs_df_clear = a.newLabel(), slow = a.newLabel(),
        fast = a.newLabel();
  park_flags(x86::r12);
  a.mov(x86::r10d, x86::ecx);
  if (size > 1) a.shl(x86::r10, size == 2 ? 1 : 2);
  const auto branch_unless_forward_safe = [&](const Label& target) {
    for (const x86::Gpd& p : pointers) {
      a.mov(x86::r11d, p);
      a.lea(x86::r13, x86::ptr(x86::r11, x86::r10));
      a.shr(x86::r13, 33);
      a.jnz(target);
    }
  };
  const auto branch_unless_backward_safe = [&](const Label& target) {
    for (const x86::Gpd& p : pointers) {
      a.mov(x86::r11d, p);
      a.lea(x86::r13, x86::ptr(x86::r11, static_cast<int32_t>(size)));
      a.cmp(x86::r13, x86::r10);
      a.jb(target);
    }
  };
  const auto branch_if_df = [&](bool set, const Label& target) {
    a.mov(x86::r9, x86::rsp);
    a.lea(x86::rsp, ctx(ctx_offset::kScratchStackTop));
    a.pushfq();
    a.pop(x86::r13);
    a.mov(x86::rsp, x86::r9);
    a.test(x86::r13d, Imm(kHostDirectionFlag));
    if (set) {
      a.jnz(target);
    } else {
      a.jz(target);
    }
  };
  branch_unless_forward_safe(forward_unsafe);
  branch_unless_backward_safe(needs_df_clear);
  a.jmp(fast);
  a.bind(forward_unsafe);
  branch_unless_backward_safe(slow);
  branch_if_df(false, slow);
  a.jmp(fast);
  a.bind(needs_df_clear);
  branch_if_df(true, slow);
  a.jmp(fast);
  a.bind(slow);
  restore_flags(x86::r12);
  leave_for_callout(d, CalloutId::kString);
  a.bind(fast);
  restore_flags(x86::r12);
}

// lea with 16-bit addressing: the offset, cut to the operand size. A nop or
// prefetch through such an address does nothing visible (and its ModRM has
// no 64-bit-mode form to copy).
bool UnitEmitter::emit_without_access_16(const DecodedInstruction& d) {
  begin_instruction(d, TranslationKind::kCompensated);
  if (d.mnemonic() == ZYDIS_MNEMONIC_LEA) {
    load_offset(d);
    const ZydisRegister destination = d.operands[0].reg.value;
    assembler_.mov(guest_gpr(destination),
                   d.insn.operand_width == 16 ? x86::Gp(x86::r11w) : x86::Gp(x86::r11d));
  }
  end_instruction(d.next_eip());
  return false;
}

// 16-bit addressing has no 64-bit-mode encoding: such an access is
// compensated through an offset computed apart, even in a flat segment.
bool UnitEmitter::compensates_access(const DecodedInstruction& d, ZydisRegister segment) const {
  return mode_.compensates(segment) || d.insn.address_width == 16;
}

// r11d = the offset of the memory operand. With 16-bit addressing, the low
// half of the 32-bit sum of the registers and the displacement is the
// 16-bit sum, wrapped at 64 KiB as on the guest.
void UnitEmitter::load_offset(const DecodedInstruction& d) {
  const ZydisDecodedOperand* memory = d.memory_operand();
  for (int i = 0; memory == nullptr; ++i) {
    if (d.operands[i].type == ZYDIS_OPERAND_TYPE_MEMORY) memory = &d.operands[i];  // lea
  }
  const ZydisDecodedOperand& op = *memory;
  if (d.insn.address_width != 16) {
    scratch_.clear();
    encode_memory_access(d, {0x8D}, 11, false, scratch_);  // lea r11d, [offset]
    embed(scratch_);
    return;
  }
  auto& a = assembler_;
  const auto disp = static_cast<int32_t>(op.mem.disp.value);
  const int base = gpr_index(op.mem.base);
  const int index = gpr_index(op.mem.index);
  if (base < 0 && index < 0) {
    a.mov(x86::r11d, Imm(static_cast<uint32_t>(disp) & 0xFFFF));
    return;
  }
  x86::Mem m = base >= 0 ? x86::ptr(x86::gpq(static_cast<uint32_t>(base)), disp)
                         : x86::ptr(x86::gpq(static_cast<uint32_t>(index)), disp);
  if (base >= 0 && index >= 0) m.setIndex(x86::gpq(static_cast<uint32_t>(index)));
  a.lea(x86::r11d, m);
  a.movzx(x86::r11d, x86::r11w);
}

// The check runs with the flags parked (RAX in r12): cmp is the only cheap
// bounds test.
// The offset is zero-extended in r11, so the end of the access is computed
// in 64 bits and an access running past 4 GiB fails as on hardware.
void UnitEmitter::compensate_offset(ZydisRegister segment, uint32_t size, bool write,
                                    int32_t esp_adjust) {
  using Check = VcpuContext::SegmentCheck;
  auto& a = assembler_;
  const int seg = segment_index(segment);
  const int32_t low = ctx_offset::segment_check(
      seg, write ? offsetof(Check, write_low) : offsetof(Check, read_low));
  const int32_t high = ctx_offset::segment_check(
      seg, write ? offsetof(Check, write_high) : offsetof(Check, read_high));
  Label fail = a.newLabel();
  check_stubs_.push_back({fail, current_eip(),
                          static_cast<uint8_t>(segment == ZYDIS_REGISTER_SS ? 12 : 13),
                          esp_adjust});
  park_flags(x86::r12);
  a.cmp(x86::r11d, ctx(low, 4));
  a.jb(fail);
  a.lea(x86::r13, x86::ptr(x86::r11, static_cast<int32_t>(size - 1)));
  a.mov(x86::r14d, ctx(high, 4));
  a.cmp(x86::r13, x86::r14);
  a.ja(fail);
  restore_flags(x86::r12);
  a.mov(x86::r13d, ctx(ctx_offset::segment_check(seg, offsetof(Check, base)), 4));
  a.lea(x86::r11d, x86::ptr(x86::r11, x86::r13));
}

// The flags are parked (RAX in r12) around the cmp; the check stub puts
// them back when it fails.
void UnitEmitter::check_code_target() {
  if (code_limit_ == 0xFFFFFFFF) return;
  auto& a = assembler_;
  Label fail = a.newLabel();
  check_stubs_.push_back({fail, current_eip(), 13, 0});
  park_flags(x86::r12);
  a.cmp(x86::r8d, Imm(code_limit_));
  a.ja(fail);
  restore_flags(x86::r12);
}

// The exception at the current instruction when condition holds, out of
// line: nothing of the instruction is done.
void UnitEmitter::raise_if(uint8_t condition, uint8_t vector) {
  Label raise = assembler_.newLabel();
  check_stubs_.push_back({raise, current_eip(), vector, 0, false});
  assembler_.j(static_cast<x86::CondCode>(condition), raise);
}

// A failed check: flags and RAX back, ESP as before the instruction, then
// the exception at the instruction.
void UnitEmitter::emit_check_stubs() {
  auto& a = assembler_;
  for (const CheckStub& stub : check_stubs_) {
    a.bind(stub.label);
    if (stub.flags_parked) restore_flags(x86::r12);
    if (stub.esp_adjust != 0) move_stack_pointer(x86::esp, stub.esp_adjust);
    raise_exception(stub.eip, stub.vector, 0);
  }
}

x86::Mem UnitEmitter::stack_slot(const x86::Gp& base, int32_t disp, uint32_t size, bool write,
                                 int32_t esp_adjust) {
  if (!mode_.compensates(ZYDIS_REGISTER_SS)) return guest(base, disp, size);
  assembler_.lea(x86::r11d, x86::ptr(base, disp));
  if (mode_.stack_16) assembler_.movzx(x86::r11d, x86::r11w);
  compensate_offset(ZYDIS_REGISTER_SS, size, write, esp_adjust);
  return guest(x86::r11d, 0, size);
}

void UnitEmitter::access_memory_operand(const DecodedInstruction& d,
                                        std::initializer_list<uint8_t> opcode, uint8_t host_reg,
                                        bool operand_16, uint32_t size, bool write,
                                        int32_t esp_adjust) {
  const ZydisRegister segment = d.memory_operand()->mem.segment;
  scratch_.clear();
  if (!compensates_access(d, segment)) {
    encode_memory_access(d, opcode, host_reg, operand_16, scratch_, segment_prefix(d));
    embed(scratch_);
    return;
  }
  load_offset(d);
  compensate_offset(segment, size, write, esp_adjust);
  // opcode host_reg, gs:[r11d]
  scratch_.clear();
  scratch_.push_back(kHostGsPrefix);
  scratch_.push_back(0x67);
  if (operand_16) scratch_.push_back(0x66);
  scratch_.push_back(static_cast<uint8_t>(0x41 | (host_reg >= 8 ? 0x04 : 0)));
  scratch_.insert(scratch_.end(), opcode.begin(), opcode.end());
  scratch_.push_back(static_cast<uint8_t>(((host_reg & 7) << 3) | (11 & 7)));
  embed(scratch_);
}

// The instruction itself runs with its memory operand replaced by [R], R a
// guest register it does not use, loaded with the linear address and put
// back after (kBorrowedRegister recovers it from r13 if the access faults).
// Forms with an implicit operand: xlat goes through r11, the others (the
// masked stores at [EDI]) borrow their own base register. False: no form
// fits (the caller makes it a #UD callout).
bool UnitEmitter::emit_compensated_ident(const DecodedInstruction& d,
                                         const ZydisDecodedOperand& op) {
  auto& a = assembler_;
  const bool write = writes(op);
  const uint32_t size = access_size(op);
  if (is_bit_test_with_register_offset(d)) {
    emit_compensated_bit_test(d, op);
    return true;
  }
  if (d.mnemonic() == ZYDIS_MNEMONIC_XLAT) {
    a.movzx(x86::r11d, x86::al);
    a.lea(x86::r11d, x86::ptr(x86::rbx, x86::r11));
    if (d.insn.address_width == 16) a.movzx(x86::r11d, x86::r11w);
    compensate_offset(op.mem.segment, 1, false);
    a.mov(x86::al, guest(x86::r11d, 0, 1));
    return true;
  }
  const bool rewrites_operand = can_encode_with_address_register(d);
  int borrowed = -1;
  if (rewrites_operand) {
    borrowed = free_guest_register(d);
    if (borrowed < 0) return false;
    load_offset(d);
  } else if (op.mem.base >= ZYDIS_REGISTER_EAX && op.mem.base <= ZYDIS_REGISTER_EDI &&
             op.mem.index == ZYDIS_REGISTER_NONE && op.mem.base != ZYDIS_REGISTER_ESP) {
    borrowed = op.mem.base - ZYDIS_REGISTER_EAX;
    a.lea(x86::r11d, x86::ptr(x86::gpq(static_cast<uint32_t>(borrowed)),
                              static_cast<int32_t>(op.mem.disp.value)));
  } else {
    return false;
  }
  compensate_offset(op.mem.segment, size, write);
  const x86::Gp r = x86::gpq(static_cast<uint32_t>(borrowed));
  a.mov(x86::r13, r);
  const uint32_t begin = static_cast<uint32_t>(a.offset());
  a.mov(r.r32(), x86::r11d);
  scratch_.clear();
  encode_ident(d, scratch_, kHostGsPrefix, rewrites_operand ? borrowed : -1);
  embed(scratch_);
  Recovery recovery{Recovery::Kind::kBorrowedRegister, 0, static_cast<uint8_t>(borrowed)};
  add_recovery(begin, recovery);
  a.mov(r, x86::r13);
  return true;
}

// bt/bts/btr/btc with a register bit offset address the operand-sized
// word (offset SAR log2(bits)) words from their operand, which may lie far
// from it: that word is the one checked, and the host instruction gets only
// the bit offset within it. The offset arithmetic runs with the flags
// parked: bt keeps ZF, and a failed check reports the flags before it.
void UnitEmitter::emit_compensated_bit_test(const DecodedInstruction& d,
                                            const ZydisDecodedOperand& op) {
  auto& a = assembler_;
  const bool word = d.insn.operand_width == 16;
  load_offset(d);
  a.mov(x86::r10d, x86::gpd(static_cast<uint32_t>(gpr_index(d.operands[1].reg.value))));
  park_flags(x86::r12);
  if (word) {
    a.movsx(x86::r9d, x86::r10w);
    a.sar(x86::r9d, 4);
    a.lea(x86::r11d, x86::ptr(x86::r11, x86::r9, 1));
    a.and_(x86::r10d, 15);
  } else {
    a.mov(x86::r9d, x86::r10d);
    a.sar(x86::r9d, 5);
    a.lea(x86::r11d, x86::ptr(x86::r11, x86::r9, 2));
    a.and_(x86::r10d, 31);
  }
  restore_flags(x86::r12);
  compensate_offset(op.mem.segment, word ? 2 : 4, writes(op));
  // [lock] op gs:[r11d], r10d (or r10w).
  scratch_.clear();
  if (d.has_attribute(ZYDIS_ATTRIB_HAS_LOCK)) scratch_.push_back(0xF0);
  scratch_.push_back(kHostGsPrefix);
  scratch_.push_back(0x67);
  if (word) scratch_.push_back(0x66);
  scratch_.push_back(0x45);  // REX.R (r10) and REX.B (r11).
  scratch_.push_back(0x0F);
  scratch_.push_back(d.insn.opcode);
  scratch_.push_back(((10 & 7) << 3) | (11 & 7));
  embed(scratch_);
}

void UnitEmitter::emit_exception(uint32_t eip, uint8_t vector, std::optional<uint32_t> error_code,
                                 std::optional<uint32_t> fault_address) {
  InstructionMap m;
  m.guest_eip = eip;
  m.kind = TranslationKind::kCompensated;
  m.host_begin = unit_->instructions.empty() ? 0 : static_cast<uint32_t>(assembler_.offset());
  unit_->instructions.push_back(m);
  ExitRecord exit;
  exit.kind = ExitKind::kException;
  exit.vector = vector;
  exit.guest_target = eip;
  exit.error_code = error_code;
  exit.fault_address = fault_address;
  leave_now(exit, eip);
  unit_->instructions.back().host_end = static_cast<uint32_t>(assembler_.offset());
  if (unit_->guest_end == unit_->guest_start) unit_->guest_end = eip + 1;
}

void UnitEmitter::emit_fallthrough(uint32_t next_eip) {
  direct_exit(std::nullopt, next_eip);
}

// An exit's out-of-line stub: the guest EIP and the exit, then the common
// exit path.
void UnitEmitter::emit_exit_stub(uint32_t guest_eip, uint32_t exit_id) {
  assembler_.mov(ctx(ctx_offset::kEip, 4), Imm(guest_eip));
  assembler_.mov(ctx(ctx_offset::kExitId, 4), Imm(exit_id));
  jump_to(cache_.stubs().exit_common);
}

// Exchanges two 8-byte context fields through r9 and r10 (no flags touched).
void UnitEmitter::swap_context_qwords(int32_t first, int32_t second) {
  auto& a = assembler_;
  a.mov(x86::r9, ctx(first, 8));
  a.mov(x86::r10, ctx(second, 8));
  a.mov(ctx(second, 8), x86::r9);
  a.mov(ctx(first, 8), x86::r10);
}

std::span<const uint8_t> UnitEmitter::finish() {
  auto& a = assembler_;
  unit_->key.mode = mode_.unit_key(variant_used_);
  for (const PendingStub& s : stubs_) {
    a.bind(s.label);
    emit_exit_stub(s.guest_target, s.exit_id);
  }
  emit_check_stubs();
  // The entry guard (TranslationUnit::guarded_entry): a jump to its kGuard
  // exit until the unit joins a guard chunk, which rewrites it in place.
  ExitRecord guard_exit;
  guard_exit.kind = ExitKind::kGuard;
  guard_exit.guest_target = unit_->guest_start;
  guard_exit.unit = unit_->id;
  const uint32_t guard_exit_id = cache_.add_exit(guard_exit);
  unit_->exits.push_back(guard_exit_id);
  Label guard = a.newLabel();
  Label guard_stub = a.newLabel();
  // Aligned: a guard packed against the stubs, with a data slot in it
  // then, once made insertion_sort in bt86-bench run 1.71x native instead
  // of 1.14x (measured, not fully understood).
  a.align(AlignMode::kCode, 16);
  a.bind(guard);
  a.embedUInt8(0xCC, kGuardBytes);
  a.bind(guard_stub);
  emit_exit_stub(unit_->guest_start, guard_exit_id);
  code_.flatten();
  code_.resolveUnresolvedLinks();
  // Everything is emitted into .text, so once relocated its buffer is the
  // finished code and needs no copy.
  if (code_.sectionCount() != 1 || code_.relocateToBase(host_start_) != kErrorOk) {
    throw std::runtime_error("asmjit could not finish a translation unit");
  }
  const std::span<uint8_t> bytes(code_.textSection()->buffer().data(),
                                 code_.textSection()->buffer().size());
  for (size_t i = 0; i < stubs_.size(); ++i) {
    ExitRecord& exit = cache_.exit(direct_exit_ids_[i]);
    exit.patch_site = host_start_ + patch_offsets_[i];
    exit.stub = host_start_ + code_.labelOffsetFromBase(stubs_[i].label);
  }
  const uint64_t guard_offset = code_.labelOffsetFromBase(guard);
  const uint64_t stub_offset = code_.labelOffsetFromBase(guard_stub);
  unit_->guarded_entry = host_start_ + guard_offset;
  unit_->guard_stub = host_start_ + stub_offset;
  const uint32_t rel = static_cast<uint32_t>(stub_offset - (guard_offset + 5));
  bytes[guard_offset] = 0xE9;  // jmp rel32
  std::memcpy(bytes.data() + guard_offset + 1, &rel, sizeof rel);
  unit_->host_size = static_cast<uint32_t>(bytes.size());
  return bytes;
}

}  // namespace bt86
