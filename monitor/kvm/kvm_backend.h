// The KVM backend: runs the bt86 Machine on hardware-assisted vCPUs.
//
// It runs exactly the machine the BT backend runs: guest RAM is the
// Machine's memfd (as memory slots over the memory map, the MMIO hole left
// out), CPUID is the Machine's model, and there is no in-kernel irqchip or
// PIT: every port and MMIO access exits to user space and goes to the
// Machine's buses, and interrupts come from the user-space PIC. That costs
// exits a kernel irqchip would save, and is what makes BT and KVM compare
// on identical device models.
//
// Whether this host should run it at all (kvm_pvm, no vmx/svm) is decided
// by check_kvm_host() in the backend registry before this is constructed;
// here only the KVM API itself is checked.
//
//   KvmBackend backend;                          // throws BackendUnavailable
//   auto vcpu = backend.create_vcpu(machine);
#pragma once

#include <memory>
#include <string_view>

#include "monitor/backend.h"
#include "monitor/kvm/kvm_fd.h"

namespace bt86 {

class KvmBackend final : public Backend {
 public:
  // Opens /dev/kvm and checks the API version and the capabilities the
  // backend relies on; throws BackendUnavailable naming what is missing.
  explicit KvmBackend(const char* device = "/dev/kvm");

  std::string_view name() const override { return "kvm"; }
  std::unique_ptr<Vcpu> create_vcpu(Machine& machine) override;

 private:
  KvmFd kvm_;
  bool has_xsave_ = false;
};

}  // namespace bt86
