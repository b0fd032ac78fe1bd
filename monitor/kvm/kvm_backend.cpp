#include "monitor/kvm/kvm_backend.h"

#include <fcntl.h>
#include <linux/kvm.h>

#include <cstring>
#include <system_error>

#include "monitor/kvm/kvm_vcpu.h"

namespace bt86 {

namespace {

struct RequiredCapability {
  int cap;
  const char* name;
};

// What the vCPU loop cannot do without: immediate_exit makes request_stop()
// race-free, SET_CPUID2 carries the shared CPUID model, VCPU_EVENTS and
// DEBUGREGS carry the parts of CpuState that kvm_regs/kvm_sregs do not.
constexpr RequiredCapability kRequired[] = {
    {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"}, {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
    {KVM_CAP_VCPU_EVENTS, "KVM_CAP_VCPU_EVENTS"},       {KVM_CAP_DEBUGREGS, "KVM_CAP_DEBUGREGS"},
    {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
};

}  // namespace

KvmBackend::KvmBackend(const char* device) {
  const int fd = open(device, O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    throw BackendUnavailable(
        fmt::format("the kvm backend cannot open {}: {}", device, std::strerror(errno)));
  }
  kvm_ = KvmFd(fd);
  const int version = ioctl(kvm_.get(), KVM_GET_API_VERSION, 0);
  if (version != KVM_API_VERSION) {
    throw BackendUnavailable(fmt::format("{} reports KVM API version {}, bt86 needs {}", device,
                                         version, KVM_API_VERSION));
  }
  for (const RequiredCapability& c : kRequired) {
    if (ioctl(kvm_.get(), KVM_CHECK_EXTENSION, c.cap) <= 0) {
      throw BackendUnavailable(
          fmt::format("the kvm backend needs {}, which {} does not offer", c.name, device));
    }
  }
  has_xsave_ = ioctl(kvm_.get(), KVM_CHECK_EXTENSION, KVM_CAP_XSAVE) > 0;
}

std::unique_ptr<Vcpu> KvmBackend::create_vcpu(Machine& machine) {
  try {
    return std::make_unique<KvmVcpu>(kvm_, machine, has_xsave_);
  } catch (const std::system_error& e) {
    throw BackendUnavailable(fmt::format("the kvm backend cannot create the VM: {}", e.what()));
  }
}

}  // namespace bt86
