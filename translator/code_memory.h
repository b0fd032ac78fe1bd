// The translation cache's memory: one memfd mapped twice, read/write for the
// emitter and read/execute for running, so no page is ever writable and
// executable at once (W^X). Offsets are shared by both views; the exec view
// is what host RIPs and jump targets refer to.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace bt86 {

class CodeMemory {
 public:
  explicit CodeMemory(size_t size);  // Throws std::runtime_error on failure.
  ~CodeMemory();
  CodeMemory(const CodeMemory&) = delete;
  CodeMemory& operator=(const CodeMemory&) = delete;

  size_t size() const { return size_; }
  uint64_t exec_base() const { return reinterpret_cast<uint64_t>(exec_); }
  bool contains(uint64_t exec_address) const { return exec_address - exec_base() < size_; }
  void write(uint64_t exec_address, std::span<const uint8_t> bytes);
  void write_u32(uint64_t exec_address, uint32_t value);

 private:
  size_t size_;
  int fd_ = -1;
  uint8_t* writable_ = nullptr;
  uint8_t* exec_ = nullptr;
};

}  // namespace bt86
