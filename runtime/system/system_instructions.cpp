#include "runtime/system/system_instructions.h"

#include <algorithm>
#include <array>

#include "runtime/system/guest_event.h"
#include "runtime/system/instruction_operands.h"

namespace bt86 {
namespace {

bool is_control_register(ZydisRegister r) {
  return r >= ZYDIS_REGISTER_CR0 && r <= ZYDIS_REGISTER_CR15;
}
bool is_debug_register(ZydisRegister r) {
  return r >= ZYDIS_REGISTER_DR0 && r <= ZYDIS_REGISTER_DR15;
}
bool is_register(const ZydisDecodedOperand& op, bool (*kind)(ZydisRegister)) {
  return op.type == ZYDIS_OPERAND_TYPE_REGISTER && kind(op.reg.value);
}

// The system forms of MOV; nullptr for ordinary data moves.
SystemInstructionHandler mov_form(const DecodedInstruction& insn) {
  const auto& dst = insn.operands[0];
  const auto& src = insn.operands[1];
  if (is_register(dst, is_control_register) || is_register(src, is_control_register)) {
    return execute_mov_control_register;
  }
  if (is_register(dst, is_debug_register) || is_register(src, is_debug_register)) {
    return execute_mov_debug_register;
  }
  if (is_register(dst, is_segment_register)) return execute_mov_to_segment;
  if (is_register(src, is_segment_register)) return execute_mov_from_segment;
  return nullptr;
}

bool is_far(const DecodedInstruction& insn) {
  return insn.insn.meta.branch_type == ZYDIS_BRANCH_TYPE_FAR;
}

// Mnemonics whose every form is a system instruction.
struct Route {
  ZydisMnemonic mnemonic;
  SystemInstructionHandler handler;
};

constexpr Route kRoutes[] = {
    {ZYDIS_MNEMONIC_LDS, execute_load_far_pointer},
    {ZYDIS_MNEMONIC_LES, execute_load_far_pointer},
    {ZYDIS_MNEMONIC_LFS, execute_load_far_pointer},
    {ZYDIS_MNEMONIC_LGS, execute_load_far_pointer},
    {ZYDIS_MNEMONIC_LSS, execute_load_far_pointer},
    {ZYDIS_MNEMONIC_IRET, execute_iret},
    {ZYDIS_MNEMONIC_IRETD, execute_iret},
    {ZYDIS_MNEMONIC_CLTS, execute_clts},
    {ZYDIS_MNEMONIC_LMSW, execute_lmsw},
    {ZYDIS_MNEMONIC_SMSW, execute_smsw},
    {ZYDIS_MNEMONIC_LGDT, execute_load_table_register},
    {ZYDIS_MNEMONIC_LIDT, execute_load_table_register},
    {ZYDIS_MNEMONIC_SGDT, execute_store_table_register},
    {ZYDIS_MNEMONIC_SIDT, execute_store_table_register},
    {ZYDIS_MNEMONIC_LLDT, execute_lldt},
    {ZYDIS_MNEMONIC_SLDT, execute_sldt},
    {ZYDIS_MNEMONIC_LTR, execute_ltr},
    {ZYDIS_MNEMONIC_STR, execute_str},
    {ZYDIS_MNEMONIC_LAR, execute_lar},
    {ZYDIS_MNEMONIC_LSL, execute_lsl},
    {ZYDIS_MNEMONIC_VERR, execute_verr},
    {ZYDIS_MNEMONIC_VERW, execute_verw},
    {ZYDIS_MNEMONIC_ARPL, execute_arpl},
    {ZYDIS_MNEMONIC_RDMSR, execute_rdmsr},
    {ZYDIS_MNEMONIC_WRMSR, execute_wrmsr},
    {ZYDIS_MNEMONIC_RDTSC, execute_rdtsc},
    {ZYDIS_MNEMONIC_RDPMC, execute_rdpmc},
    {ZYDIS_MNEMONIC_CPUID, execute_cpuid},
    {ZYDIS_MNEMONIC_IN, execute_in},
    {ZYDIS_MNEMONIC_OUT, execute_out},
    {ZYDIS_MNEMONIC_INSB, execute_string_io},
    {ZYDIS_MNEMONIC_INSW, execute_string_io},
    {ZYDIS_MNEMONIC_INSD, execute_string_io},
    {ZYDIS_MNEMONIC_OUTSB, execute_string_io},
    {ZYDIS_MNEMONIC_OUTSW, execute_string_io},
    {ZYDIS_MNEMONIC_OUTSD, execute_string_io},
    {ZYDIS_MNEMONIC_SYSENTER, execute_sysenter},
    {ZYDIS_MNEMONIC_SYSEXIT, execute_sysexit},
    {ZYDIS_MNEMONIC_INT, execute_int},
    {ZYDIS_MNEMONIC_INT3, execute_int3},
    {ZYDIS_MNEMONIC_INTO, execute_into},
    {ZYDIS_MNEMONIC_INT1, execute_int1},
    {ZYDIS_MNEMONIC_HLT, execute_hlt},
    {ZYDIS_MNEMONIC_INVLPG, execute_invlpg},
    {ZYDIS_MNEMONIC_WBINVD, execute_cache_invalidation},
    {ZYDIS_MNEMONIC_INVD, execute_cache_invalidation},
    {ZYDIS_MNEMONIC_CLI, execute_cli},
    {ZYDIS_MNEMONIC_STI, execute_sti},
    {ZYDIS_MNEMONIC_PUSHF, execute_pushf},
    {ZYDIS_MNEMONIC_PUSHFD, execute_pushf},
    {ZYDIS_MNEMONIC_POPF, execute_popf},
    {ZYDIS_MNEMONIC_POPFD, execute_popf},
};

SystemInstructionHandler handler_of(const DecodedInstruction& insn) {
  switch (insn.mnemonic()) {
    case ZYDIS_MNEMONIC_MOV:
      return mov_form(insn);
    case ZYDIS_MNEMONIC_POP:
      return is_register(insn.operands[0], is_segment_register) ? execute_pop_segment : nullptr;
    case ZYDIS_MNEMONIC_JMP:
      return is_far(insn) ? execute_far_jmp : nullptr;
    case ZYDIS_MNEMONIC_CALL:
      return is_far(insn) ? execute_far_call : nullptr;
    case ZYDIS_MNEMONIC_RET:
      return is_far(insn) ? execute_far_ret : nullptr;
    default:
      break;
  }
  const auto* route = std::find_if(std::begin(kRoutes), std::end(kRoutes),
                                   [&](const Route& r) { return r.mnemonic == insn.mnemonic(); });
  return route == std::end(kRoutes) ? nullptr : route->handler;
}

}  // namespace

bool is_system_instruction(const DecodedInstruction& insn) {
  return handler_of(insn) != nullptr;
}

SystemOutcome execute_system_instruction(SystemContext& ctx, const DecodedInstruction& insn) {
  const SystemInstructionHandler handler = handler_of(insn);
  if (!handler) return SystemOutcome::fault(vector::kUd);
  return handler(ctx, insn);
}

}  // namespace bt86
