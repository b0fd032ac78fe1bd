// make_backend(): the one place that maps a backend name to an engine.
//
// "kvm" first runs the host check so that a host which could never run it
// says why (no /dev/kvm, no hardware virtualization) and a software-only
// /dev/kvm (kvm_pvm) is refused unless the user opted in.
#include <fmt/format.h>

#include "monitor/backend.h"
#include "monitor/kvm/kvm_backend.h"
#include "monitor/kvm_host_check.h"
#include "runtime/bt/bt_backend.h"

namespace bt86 {

std::unique_ptr<Backend> make_backend(std::string_view name, const BackendOptions& options) {
  if (name == "bt") {
    return std::make_unique<BtBackend>(BtOptions{.count_executed = options.collect_statistics,
                                                 .adapt = options.adaptive_retranslation});
  }
  if (name == "kvm") {
    const KvmHostReport host = check_kvm_host();
    if (!host.usable()) {
      throw BackendUnavailable(
          fmt::format("the kvm backend cannot run on this host: {}", host.reason));
    }
    if (host.status == KvmHostStatus::kSoftwareOnly && !options.allow_software_kvm) {
      throw BackendUnavailable(
          fmt::format("the kvm backend refuses this host: {}; use --backend bt, or pass "
                      "--allow-software-kvm to run anyway",
                      host.reason));
    }
    return std::make_unique<KvmBackend>();
  }
  throw BackendUnavailable(fmt::format("unknown backend '{}' (choose bt or kvm)", name));
}

}  // namespace bt86
