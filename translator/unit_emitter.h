// The x86-specific half of translation: host code for one guest
// instruction at a time, under the register conventions of the design brief
// (guest EAX..EDI in host RAX..RDI, guest ESP in RSP, guest arithmetic flags
// and DF in RFLAGS, r15 = VcpuContext, r8-r14 scratch of the monitor).
//
// Invariants the emitted code keeps: the upper halves of RAX..RDI and RSP
// are zero between guest instructions; the host stack is never used (the
// only pushes go to VcpuContext::scratch_stack); every guest memory access
// carries 0x65 0x67 (GS = window base, 32-bit effective address); any host
// instruction that can fault sits inside its guest instruction's host range
// with a recovery recipe if guest state is half updated there.
//
// Exits are emitted out of line after the unit body, so the hot path falls
// through or jumps straight to the next unit once linked. A conditional
// branch is a side exit (jcc rel32, patched like any direct exit) and the
// unit goes on along its fall-through, so a loop body with early-out tests
// runs as one unit. A branch back to the unit's own start is linked past
// the poll load (TranslationUnit::loop_entry); every other way in passes the
// poll load, and the event kicker's signal breaks a unit's own loop.
#pragma once

#include <asmjit/x86.h>

#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "translator/guest_decoder.h"
#include "translator/opcode_table.h"
#include "translator/translation_cache.h"
#include "translator/translation_mode.h"

namespace bt86 {

// One emitter serves unit after unit (the Translator keeps it): the
// assembler's buffers and the emitter's own lists keep their memory between
// units, which saved a tenth of the translation time of a Linux boot.
class UnitEmitter {
 public:
  explicit UnitEmitter(TranslationCache& cache);

  // Starts a unit; host_start is the exec address the code will live at.
  void begin(uint64_t host_start, const UnitKey& key, const TranslationMode& mode,
             uint64_t* execution_counter);

  // Emits one instruction; returns true if the unit must end after it.
  bool emit(const DecodedInstruction& d, const OpcodeEntry& entry);
  // Ends the unit with an exception raised at eip (undecodable bytes, a
  // fetch fault); the exception counts as the unit's last instruction.
  void emit_exception(uint32_t eip, uint8_t vector, std::optional<uint32_t> error_code,
                      std::optional<uint32_t> fault_address);
  // Ends the unit by continuing at next_eip (size limit, fetch boundary).
  void emit_fallthrough(uint32_t next_eip);

  size_t host_size() const { return assembler_.offset(); }
  // Emits the exit stubs and returns the finished code, valid until the
  // next begin().
  std::span<const uint8_t> finish();
  std::unique_ptr<TranslationUnit> take_unit() { return std::move(unit_); }

 private:
  struct PendingStub {
    asmjit::Label label;
    uint32_t exit_id;
    uint32_t guest_target;
  };

  void begin_segment(uint64_t* counter);
  void begin_instruction(const DecodedInstruction& d, TranslationKind kind);
  void emit_fpu_gate();
  void end_instruction(uint32_t next_guest);
  void add_recovery(uint32_t begin, Recovery recovery);
  void embed(const std::vector<uint8_t>& bytes);
  void jump_to(uint64_t exec_address);
  void direct_exit(std::optional<uint8_t> condition, uint32_t guest_target);
  void leave_now(ExitRecord exit, uint32_t reported_eip);
  void park_flags(const asmjit::x86::Gp& saved_rax);
  void restore_flags(const asmjit::x86::Gp& saved_rax);
  void indirect_jump();  // Target guest EIP in r8d.
  // Near branches to targets past the CS limit raise #GP(0) at the branch,
  // with nothing of it done (limits below 4 GiB only).
  bool beyond_code_limit(uint32_t target) const { return target > code_limit_; }
  void check_code_target();  // Target guest EIP in r8d.
  void raise_if(uint8_t condition, uint8_t vector);
  void load_operand_to_r8(const DecodedInstruction& d, const ZydisDecodedOperand& op);
  void push_value(asmjit::Operand_ value, int size);
  // ESP = from + delta for implicit stack operations (TranslationMode::stack_16:
  // SP alone). Flags survive; r14 is clobbered.
  void move_stack_pointer(const asmjit::x86::Gp& from, int32_t delta);
  uint8_t segment_prefix(const DecodedInstruction& d) const;
  uint32_t current_eip() const { return unit_->instructions.back().guest_eip; }

  // Compensated segments (TranslationMode::compensated). r11d holds a guest
  // offset through segment: checks size bytes from it against the segment's
  // bounds for the access (out of line to a #GP(0), or #SS(0) for SS, with
  // ESP moved by esp_adjust first) and turns it into the linear address.
  // Flags survive; r12, r13 and r14 are clobbered.
  void compensate_offset(ZydisRegister segment, uint32_t size, bool write, int32_t esp_adjust = 0);
  bool compensates_access(const DecodedInstruction& d, ZydisRegister segment) const;
  bool emit_without_access_16(const DecodedInstruction& d);
  void push_return_address(const DecodedInstruction& d);
  void load_offset(const DecodedInstruction& d);
  // The guest stack slot [base + disp] (SS): checked and based through r11
  // when SS is compensated.
  asmjit::x86::Mem stack_slot(const asmjit::x86::Gp& base, int32_t disp, uint32_t size, bool write,
                              int32_t esp_adjust = 0);
  asmjit::x86::Mem stack_slot(int32_t disp, uint32_t size, bool write, int32_t esp_adjust = 0) {
    return stack_slot(asmjit::x86::esp, disp, size, write, esp_adjust);
  }
  // "opcode host_reg, [d's memory operand]" as encode_memory_access() has
  // it, compensated when the operand's segment is.
  void access_memory_operand(const DecodedInstruction& d, std::initializer_list<uint8_t> opcode,
                             uint8_t host_reg, bool operand_16, uint32_t size, bool write,
                             int32_t esp_adjust = 0);
  bool emit_compensated_ident(const DecodedInstruction& d, const ZydisDecodedOperand& op);
  void emit_compensated_bit_test(const DecodedInstruction& d, const ZydisDecodedOperand& op);
  void emit_check_stubs();
  // shadow: sti's (the interrupt waits one more instruction), not popf's.
  void load_interrupt_window(bool shadow);
  void raise_exception(uint32_t eip, uint8_t vector, std::optional<uint32_t> error_code);

  bool emit_push(const DecodedInstruction& d);
  void emit_push_segment(const DecodedInstruction& d);
  void emit_move_from_segment(const DecodedInstruction& d);
  void emit_load_segment(const DecodedInstruction& d);
  void emit_verw(const DecodedInstruction& d);
  void load_selector(const DecodedInstruction& d, const ZydisDecodedOperand& src);
  void jump_if_selector_is(int32_t expected_offset, asmjit::Label target);
  void leave_for_callout(const DecodedInstruction& d, CalloutId id);
  void emit_exit_stub(uint32_t guest_eip, uint32_t exit_id);
  void swap_context_qwords(int32_t first, int32_t second);
  bool emit_pop(const DecodedInstruction& d);
  bool emit_push_all(const DecodedInstruction& d);
  bool emit_pop_all(const DecodedInstruction& d);
  bool emit_pushf(const DecodedInstruction& d);
  bool emit_popf(const DecodedInstruction& d);
  bool emit_iret(const DecodedInstruction& d);
  void store_virtual_if(const asmjit::x86::Gp& image, const asmjit::x86::Gp& scratch);
  void load_host_flags(const asmjit::x86::Gp& image);
  bool emit_string(const DecodedInstruction& d);
  void check_string_stays_in_window(const DecodedInstruction& d, bool uses_source,
                                    bool uses_destination);
  bool emit_callout(const DecodedInstruction& d, CalloutId id);

  TranslationCache& cache_;
  TranslationMode mode_;
  uint32_t code_limit_ = 0xFFFFFFFF;
  uint64_t host_start_ = 0;
  asmjit::CodeHolder code_;
  asmjit::x86::Assembler assembler_;
  std::unique_ptr<TranslationUnit> unit_;
  std::vector<PendingStub> stubs_;
  struct CheckStub {
    asmjit::Label label;
    uint32_t eip;
    uint8_t vector;
    int32_t esp_adjust;
    bool flags_parked = true;  // park_flags(r12) is in effect when it is taken.
  };
  std::vector<CheckStub> check_stubs_;
  std::vector<uint32_t> patch_offsets_;  // Parallel to the direct exits in unit_->exits.
  std::vector<uint32_t> direct_exit_ids_;
  std::vector<uint8_t> scratch_;
  // The last instruction was a conditional side exit: the next one starts
  // a new execution segment.
  bool follows_side_exit_ = false;
  // The unit has passed through the FPU gate (cache_stubs.h): the guest's
  // x87/SSE state is live for the rest of it.
  bool fpu_gate_emitted_ = false;
  // An instruction so far depends on TranslationMode::variant_mask().
  bool variant_used_ = false;
};

}  // namespace bt86
