#include "monitor/kvm/kvm_debug_target.h"

#include <linux/kvm.h>

#include <atomic>
#include <set>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>

#include "monitor/kvm/kvm_vcpu.h"
#include "monitor/machine.h"

namespace bt86 {
namespace {

constexpr int kSlots = 4;
constexpr uint64_t kDr6BreakpointBits = 0xF;

class KvmDebugTarget final : public DebugTarget {
 public:
  KvmDebugTarget(Machine& machine, std::unique_ptr<Vcpu> vcpu) : machine_(machine) {
    vcpu_.reset(dynamic_cast<KvmVcpu*>(vcpu.get()));
    if (!vcpu_) throw std::logic_error("make_kvm_debug_target needs a KvmVcpu");
    vcpu.release();
  }

  std::string_view backend_name() const override { return "kvm"; }
  Machine& machine() override { return machine_; }
  CpuState state() const override { return vcpu_->state(); }
  void set_state(const CpuState& state) override { vcpu_->set_state(state); }

  DebugStop step() override { return run(true, false); }

  DebugStop resume() override {
    // A hardware breakpoint at EIP would fire again at once: step past it
    // with the breakpoints off, then run with them on.
    if (breakpoints_.contains(vcpu_->state().eip)) {
      const DebugStop first = run(true, false);
      if (first.kind != DebugStop::Kind::kStep) return first;
    }
    return run(false, true);
  }

  void interrupt() override {
    interrupted_.store(true, std::memory_order_release);
    vcpu_->request_stop();
  }

  void insert_breakpoint(uint32_t eip) override { breakpoints_.insert(eip); }
  void remove_breakpoint(uint32_t eip) override { breakpoints_.erase(eip); }

  bool insert_watchpoint(uint32_t linear, uint32_t length, std::string* why) override {
    if ((length != 1 && length != 2 && length != 4) || linear % length != 0) {
      *why = "under kvm a watchpoint is 1, 2 or 4 bytes, aligned to its size (a debug register)";
      return false;
    }
    if (breakpoints_.size() + watchpoints_.size() >= kSlots) {
      *why = "all four debug registers are in use";
      return false;
    }
    watchpoints_.push_back({linear, length});
    return true;
  }

  void remove_watchpoint(uint32_t linear, uint32_t length) override {
    std::erase_if(watchpoints_,
                  [&](const Watch& w) { return w.linear == linear && w.length == length; });
  }

  // KVM runs the guest's own page tables on its memory: nothing derived.
  void memory_written(uint32_t, uint32_t) override {}

 private:
  struct Watch {
    uint32_t linear;
    uint32_t length;
  };

  DebugStop run(bool single_step, bool with_breakpoints) {
    kvm_guest_debug debug{};
    debug.control = KVM_GUESTDBG_ENABLE | (single_step ? KVM_GUESTDBG_SINGLESTEP : 0);
    std::vector<std::pair<uint32_t, uint64_t>> slots;  // Address, DR7 R/W and LEN bits.
    if (with_breakpoints) {
      for (uint32_t eip : breakpoints_) slots.emplace_back(eip, 0);
      for (const Watch& w : watchpoints_) {
        const uint64_t len = w.length == 1 ? 0 : w.length == 2 ? 1 : 3;
        slots.emplace_back(w.linear, 1 | (len << 2));  // R/W=01: data writes.
      }
    }
    if (slots.size() > kSlots) slots.resize(kSlots);
    if (!slots.empty()) {
      debug.control |= KVM_GUESTDBG_USE_HW_BP;
      uint64_t dr7 = 0;
      for (size_t i = 0; i < slots.size(); ++i) {
        debug.arch.debugreg[i] = slots[i].first;
        dr7 |= uint64_t{2} << (i * 2);  // G0-G3.
        dr7 |= slots[i].second << (16 + i * 4);
      }
      debug.arch.debugreg[7] = dr7;
    }
    vcpu_->set_guest_debug(debug);
    const VcpuExit exit = vcpu_->run();
    kvm_guest_debug off{};
    vcpu_->set_guest_debug(off);

    DebugStop stop;
    stop.exit = exit;
    const bool interrupted = interrupted_.exchange(false, std::memory_order_acq_rel);
    if (exit.kind != VcpuExit::Kind::kStopRequested) {
      stop.kind = DebugStop::Kind::kExited;
    } else if (exit.message == "debug exit") {
      const kvm_debug_exit_arch& d = vcpu_->last_debug_exit();
      stop.kind = single_step ? DebugStop::Kind::kStep : DebugStop::Kind::kBreakpoint;
      for (size_t i = 0; i < slots.size(); ++i) {
        if ((d.dr6 & kDr6BreakpointBits & (1u << i)) && slots[i].second != 0) {
          stop.kind = DebugStop::Kind::kWatchpoint;
          stop.address = slots[i].first;
        }
      }
    } else if (interrupted) {
      stop.kind = DebugStop::Kind::kInterrupted;
    } else {
      stop.kind = DebugStop::Kind::kExited;
    }
    return stop;
  }

  Machine& machine_;
  std::unique_ptr<KvmVcpu> vcpu_;
  std::set<uint32_t> breakpoints_;
  std::vector<Watch> watchpoints_;
  std::atomic<bool> interrupted_{false};
};

}  // namespace

std::unique_ptr<DebugTarget> make_kvm_debug_target(Machine& machine, std::unique_ptr<Vcpu> vcpu) {
  return std::make_unique<KvmDebugTarget>(machine, std::move(vcpu));
}

}  // namespace bt86
