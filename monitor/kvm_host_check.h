// Can this host run the KVM backend, and with hardware assist?
//
// /dev/kvm existing is not enough: on hosts without VT-x/AMD-V (nested VMs
// such as bt86's development machines) it may be kvm_pvm, a software
// shadow-paging hypervisor that runs guests roughly a thousand times slower
// than native and stops on instructions its emulator lacks. The KVM backend
// refuses such a /dev/kvm unless the user opts in, and the message says
// which of the checks failed so the user can act on it.
//
// The paths are parameters so tests can point the check at fake files.
//
//   KvmHostReport r = check_kvm_host();
//   if (r.status != KvmHostStatus::kHardware) fmt::print("{}\n", r.reason);
#pragma once

#include <string>

namespace bt86 {

enum class KvmHostStatus {
  kHardware,       // /dev/kvm works and VT-x/AMD-V is behind it.
  kSoftwareOnly,   // /dev/kvm works but without hardware virtualization.
  kNoDevice,       // /dev/kvm does not exist.
  kCannotOpen,     // /dev/kvm exists but cannot be opened (permissions...).
  kBadApiVersion,  // KVM_GET_API_VERSION failed or is not 12.
};

struct KvmHostReport {
  KvmHostStatus status = KvmHostStatus::kNoDevice;
  // Why the status is what it is, as a sentence a user can act on.
  std::string reason;
  bool usable() const {
    return status == KvmHostStatus::kHardware || status == KvmHostStatus::kSoftwareOnly;
  }
};

struct KvmHostPaths {
  std::string device = "/dev/kvm";
  std::string cpuinfo = "/proc/cpuinfo";
  std::string modules = "/proc/modules";
};

KvmHostReport check_kvm_host(const KvmHostPaths& paths = {});

// True if the "flags" lines of a /proc/cpuinfo text name vmx or svm.
bool cpuinfo_has_hardware_virtualization(const std::string& cpuinfo);
// True if a /proc/modules text lists the kvm_pvm module.
bool modules_list_kvm_pvm(const std::string& modules);

}  // namespace bt86
