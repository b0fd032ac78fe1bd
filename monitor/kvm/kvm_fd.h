// A file descriptor of /dev/kvm, a VM or a vCPU, closed on destruction, and
// the ioctl wrapper every KVM call goes through so that a failure always
// names the ioctl and errno's text.
#pragma once

#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>
#include <system_error>
#include <utility>

#include <fmt/format.h>

namespace bt86 {

class KvmFd {
 public:
  KvmFd() = default;
  explicit KvmFd(int fd) : fd_(fd) {}
  ~KvmFd() {
    if (fd_ >= 0) close(fd_);
  }
  KvmFd(KvmFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  KvmFd& operator=(KvmFd&& other) noexcept {
    std::swap(fd_, other.fd_);
    return *this;
  }
  KvmFd(const KvmFd&) = delete;
  KvmFd& operator=(const KvmFd&) = delete;

  int get() const { return fd_; }

  // Returns the ioctl's non-negative result; throws std::system_error naming
  // the request on failure.
  template <typename Arg>
  int ioctl_or_throw(unsigned long request, std::string_view name, Arg arg) const {
    const int r = ::ioctl(fd_, request, arg);
    if (r < 0) {
      const int err = errno;
      throw std::system_error(err, std::generic_category(), fmt::format("KVM {} failed", name));
    }
    return r;
  }

 private:
  int fd_ = -1;
};

}  // namespace bt86
