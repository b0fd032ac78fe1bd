#include "monitor/guest_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace bt86 {

namespace {

constexpr uint64_t kPageSize = 4096;

std::string errno_text() {
  return std::strerror(errno);
}

}  // namespace

GuestMemory::GuestMemory(uint64_t size) : size_(size) {
  if (size == 0 || size % kPageSize != 0) {
    throw GuestMemoryError(
        fmt::format("guest RAM size {:#x} is not a non-zero multiple of 4 KiB", size));
  }
  fd_ = memfd_create("bt86-guest-ram", MFD_CLOEXEC);
  if (fd_ < 0) throw GuestMemoryError(fmt::format("memfd_create: {}", errno_text()));
  if (ftruncate(fd_, static_cast<off_t>(size)) != 0) {
    const std::string reason = errno_text();
    close(fd_);
    throw GuestMemoryError(fmt::format("cannot size guest RAM to {} bytes: {}", size, reason));
  }
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
  if (p == MAP_FAILED) {
    const std::string reason = errno_text();
    close(fd_);
    throw GuestMemoryError(fmt::format("cannot map {} bytes of guest RAM: {}", size, reason));
  }
  base_ = static_cast<uint8_t*>(p);
}

GuestMemory::~GuestMemory() {
  munmap(base_, size_);
  close(fd_);
}

void GuestMemory::check(uint64_t gpa, uint64_t length, const char* what) const {
  if (!contains(gpa, length)) {
    throw GuestMemoryError(
        fmt::format("guest-physical {} of {} bytes at {:#x} is outside RAM (size {:#x})", what,
                    length, gpa, size_));
  }
}

void GuestMemory::read(uint64_t gpa, std::span<uint8_t> out) const {
  check(gpa, out.size(), "read");
  if (!out.empty()) std::memcpy(out.data(), base_ + gpa, out.size());
}

void GuestMemory::write(uint64_t gpa, std::span<const uint8_t> data) {
  check(gpa, data.size(), "write");
  if (!data.empty()) std::memcpy(base_ + gpa, data.data(), data.size());
}

void GuestMemory::fill(uint64_t gpa, uint8_t value, uint64_t length) {
  check(gpa, length, "fill");
  std::memset(base_ + gpa, value, length);
}

uint8_t* GuestMemory::host_pointer(uint64_t gpa, uint64_t length) const {
  check(gpa, length, "access");
  return base_ + gpa;
}

uint8_t GuestMemory::read_u8(uint64_t gpa) const {
  uint8_t v;
  read(gpa, {&v, 1});
  return v;
}

uint16_t GuestMemory::read_u16(uint64_t gpa) const {
  uint16_t v;
  read(gpa, {reinterpret_cast<uint8_t*>(&v), sizeof v});
  return v;
}

uint32_t GuestMemory::read_u32(uint64_t gpa) const {
  uint32_t v;
  read(gpa, {reinterpret_cast<uint8_t*>(&v), sizeof v});
  return v;
}

void GuestMemory::write_u8(uint64_t gpa, uint8_t value) {
  write(gpa, {&value, 1});
}

void GuestMemory::write_u16(uint64_t gpa, uint16_t value) {
  write(gpa, {reinterpret_cast<const uint8_t*>(&value), sizeof value});
}

void GuestMemory::write_u32(uint64_t gpa, uint32_t value) {
  write(gpa, {reinterpret_cast<const uint8_t*>(&value), sizeof value});
}

}  // namespace bt86
