#include "translator/code_memory.h"

#include <fmt/format.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace bt86 {

CodeMemory::CodeMemory(size_t size) : size_(size) {
  fd_ = memfd_create("bt86-translation-cache", MFD_CLOEXEC);
  if (fd_ < 0 || ftruncate(fd_, static_cast<off_t>(size)) != 0) {
    throw std::runtime_error(fmt::format("translation cache memfd: {}", strerror(errno)));
  }
  void* rw = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
  void* rx = mmap(nullptr, size, PROT_READ | PROT_EXEC, MAP_SHARED, fd_, 0);
  if (rw == MAP_FAILED || rx == MAP_FAILED) {
    int e = errno;
    if (rw != MAP_FAILED) munmap(rw, size);
    if (rx != MAP_FAILED) munmap(rx, size);
    close(fd_);
    throw std::runtime_error(fmt::format("translation cache mapping: {}", strerror(e)));
  }
  writable_ = static_cast<uint8_t*>(rw);
  exec_ = static_cast<uint8_t*>(rx);
}

CodeMemory::~CodeMemory() {
  munmap(writable_, size_);
  munmap(exec_, size_);
  close(fd_);
}

void CodeMemory::write(uint64_t exec_address, std::span<const uint8_t> bytes) {
  if (!contains(exec_address) || exec_address - exec_base() + bytes.size() > size_) {
    throw std::logic_error("write outside the translation cache");
  }
  std::memcpy(writable_ + (exec_address - exec_base()), bytes.data(), bytes.size());
}

void CodeMemory::write_u32(uint64_t exec_address, uint32_t value) {
  uint8_t b[4];
  std::memcpy(b, &value, 4);
  write(exec_address, b);
}

}  // namespace bt86
