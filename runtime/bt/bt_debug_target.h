// The debugger's view of a BtVcpu: exact breakpoints and single steps
// through the dispatcher's hooks (runtime/bt/bt_debug_hooks.h), write
// watchpoints as traced frames, and the translator's and shadow MMU's
// state for the BT-only commands (translate, tc, adapt, traces, pt,
// spaces).
//
// Stepping runs every instruction as its own single-instruction unit, so a
// step is one guest instruction whatever unit would have held it.
// Breakpoints retire the units that hold them; the dispatcher then never
// links to or looks up a unit holding one, and runs such a unit one
// instruction at a time, asking before each one.
//
//   BtDebugTarget target(machine, std::make_unique<BtVcpu>(machine, options));
//   target.insert_breakpoint(0x100020);
//   DebugStop s = target.resume();
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <set>
#include <unordered_map>
#include <vector>

#include "monitor/debug_target.h"
#include "runtime/bt/bt_debug_hooks.h"
#include "runtime/bt/bt_vcpu.h"

namespace bt86 {

class BtDebugTarget final : public DebugTarget, private BtDebugHooks {
 public:
  BtDebugTarget(Machine& machine, std::unique_ptr<BtVcpu> vcpu);
  ~BtDebugTarget() override;
  BtDebugTarget(const BtDebugTarget&) = delete;
  BtDebugTarget& operator=(const BtDebugTarget&) = delete;

  // DebugTarget.
  std::string_view backend_name() const override { return "bt"; }
  Machine& machine() override { return machine_; }
  CpuState state() const override { return vcpu_->state(); }
  void set_state(const CpuState& state) override { vcpu_->set_state(state); }
  DebugStop step() override;
  DebugStop resume() override;
  void interrupt() override;
  void insert_breakpoint(uint32_t eip) override;
  void remove_breakpoint(uint32_t eip) override;
  bool insert_watchpoint(uint32_t linear, uint32_t length, std::string* why) override;
  void remove_watchpoint(uint32_t linear, uint32_t length) override;
  void memory_written(uint32_t physical, uint32_t length) override;
  BtDebugTarget* bt() override { return this; }

  // BT-only views. Pointers stay valid until the guest runs again.
  // Live units whose guest range holds linear (in the current address space).
  std::vector<const TranslationUnit*> units_covering(uint32_t linear);
  // Every live unit, in translation order.
  std::vector<const TranslationUnit*> live_units();
  const ExitRecord& exit_record(uint32_t id) { return vcpu_->cache_.exit(id); }
  // Which unit's entry an exec address is, if any (for linked exits).
  const TranslationUnit* unit_at_host(uint64_t exec_address) const;
  std::string statistics() const { return vcpu_->statistics(); }
  uint64_t flush_count() const { return vcpu_->cache_.flush_count(); }
  void flush_cache();
  const std::vector<BtAdaptation>& adaptations() const { return vcpu_->adaptations(); }
  bool adaptation_enabled() const { return vcpu_->options_.adapt; }
  uint32_t adaptation_threshold() const { return vcpu_->options_.adapt_threshold; }

  struct TracedFrame {
    uint32_t frame;
    TraceKinds kinds;
    uint64_t faults;  // Trace faults on it since the debugger attached.
  };
  std::vector<TracedFrame> traced_frames() const;
  std::vector<const ShadowAddressSpace*> spaces() const { return vcpu_->mmu_.spaces(); }
  const ShadowAddressSpace* current_space() const { return vcpu_->space_; }

 private:
  enum class Mode { kStep, kRun };
  struct Watchpoint {
    uint32_t linear;
    uint32_t length;
    std::vector<std::pair<uint32_t, uint32_t>> physical;  // (first byte, length) per page.
  };

  DebugStop run(Mode mode);
  bool holds_breakpoint(const TranslationUnit& unit) const;
  void retrace_watched_frames();

  // BtDebugHooks.
  bool stop_before(uint32_t eip) override;
  bool run_single(const TranslationUnit& unit) override;
  bool may_enter_directly(const TranslationUnit& unit) override;
  void trace_fault(uint32_t physical, TraceKinds kinds) override;
  void traced_write(uint32_t physical, uint32_t length, TraceKinds kinds) override;

  Machine& machine_;
  std::unique_ptr<BtVcpu> vcpu_;
  std::set<uint32_t> breakpoints_;
  std::vector<Watchpoint> watchpoints_;
  std::unordered_map<uint32_t, uint64_t> trace_fault_counts_;

  // The current run.
  Mode mode_ = Mode::kRun;
  uint32_t steps_done_ = 0;
  bool first_dispatch_ = false;
  uint32_t start_eip_ = 0;
  bool hook_stopped_ = false;
  std::optional<uint32_t> watch_hit_;
  std::atomic<bool> interrupted_{false};
};

}  // namespace bt86
