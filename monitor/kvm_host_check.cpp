#include "monitor/kvm_host_check.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

namespace bt86 {

namespace {

std::string read_text_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return {};
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

bool has_word(const std::string& line, std::string_view word) {
  std::istringstream words(line);
  std::string w;
  while (words >> w) {
    if (w == word) return true;
  }
  return false;
}

}  // namespace

bool cpuinfo_has_hardware_virtualization(const std::string& cpuinfo) {
  std::istringstream lines(cpuinfo);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    if (has_word(line, "vmx") || has_word(line, "svm")) return true;
  }
  return false;
}

bool modules_list_kvm_pvm(const std::string& modules) {
  std::istringstream lines(modules);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("kvm_pvm ", 0) == 0 || line == "kvm_pvm") return true;
  }
  return false;
}

KvmHostReport check_kvm_host(const KvmHostPaths& paths) {
  const int fd = open(paths.device.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) {
      return {KvmHostStatus::kNoDevice,
              fmt::format("{} does not exist (the kvm module is not loaded or this host has no "
                          "virtualization support)",
                          paths.device)};
    }
    return {KvmHostStatus::kCannotOpen,
            fmt::format("cannot open {}: {} (check its permissions or the kvm group)", paths.device,
                        std::strerror(err))};
  }
  const int version = ioctl(fd, KVM_GET_API_VERSION, 0);
  const int err = errno;
  close(fd);
  if (version != KVM_API_VERSION) {
    return {KvmHostStatus::kBadApiVersion,
            version < 0 ? fmt::format("KVM_GET_API_VERSION on {} failed: {}", paths.device,
                                      std::strerror(err))
                        : fmt::format("{} reports KVM API version {}, bt86 needs {}", paths.device,
                                      version, KVM_API_VERSION)};
  }
  if (modules_list_kvm_pvm(read_text_file(paths.modules))) {
    return {KvmHostStatus::kSoftwareOnly,
            fmt::format("{} is provided by kvm_pvm, a software hypervisor without hardware "
                        "virtualization (guests run about 1000x slower than native)",
                        paths.device)};
  }
  if (!cpuinfo_has_hardware_virtualization(read_text_file(paths.cpuinfo))) {
    return {KvmHostStatus::kSoftwareOnly,
            fmt::format("{} exists but the CPU has no hardware virtualization (no vmx or svm flag "
                        "in {}), so KVM would emulate every guest instruction in software",
                        paths.device, paths.cpuinfo)};
  }
  return {KvmHostStatus::kHardware, fmt::format("{} with hardware virtualization", paths.device)};
}

}  // namespace bt86
