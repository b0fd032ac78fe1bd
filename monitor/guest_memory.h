// Guest RAM: one memfd, mapped once read/write for the VMM.
//
// The memfd is the single owner of guest-physical RAM contents. The VMM's own
// mapping (host_base()) is what loaders, devices and emulated stores use;
// other components map fd() again (the BT backend's address-space windows,
// KVM's memory slot), so every view sees the same pages. Guest-physical
// address 0 is offset 0 of the memfd; RAM is contiguous up to size().
//
// Every copy is bounds-checked as a whole before any byte moves: an access
// that would cross the end of RAM throws GuestMemoryError and leaves memory
// untouched.
//
//   GuestMemory ram(256 << 20);
//   ram.write(0x100000, kernel_bytes);
//   uint32_t magic = ram.read_u32(0x100000);
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>

namespace bt86 {

class GuestMemoryError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class GuestMemory {
 public:
  // Throws GuestMemoryError if size is zero or not a multiple of 4 KiB, or
  // if the memfd cannot be created, sized or mapped (the message carries
  // errno's text).
  explicit GuestMemory(uint64_t size);
  ~GuestMemory();
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;

  uint64_t size() const { return size_; }
  int fd() const { return fd_; }
  uint8_t* host_base() const { return base_; }

  bool contains(uint64_t gpa, uint64_t length) const {
    return gpa <= size_ && length <= size_ - gpa;
  }

  // Throw GuestMemoryError if [gpa, gpa + size) is not entirely RAM.
  void read(uint64_t gpa, std::span<uint8_t> out) const;
  void write(uint64_t gpa, std::span<const uint8_t> data);
  void fill(uint64_t gpa, uint8_t value, uint64_t length);

  uint8_t read_u8(uint64_t gpa) const;
  uint16_t read_u16(uint64_t gpa) const;
  uint32_t read_u32(uint64_t gpa) const;
  void write_u8(uint64_t gpa, uint8_t value);
  void write_u16(uint64_t gpa, uint16_t value);
  void write_u32(uint64_t gpa, uint32_t value);

  // A host pointer to [gpa, gpa + length) inside the VMM mapping, checked.
  uint8_t* host_pointer(uint64_t gpa, uint64_t length) const;

 private:
  void check(uint64_t gpa, uint64_t length, const char* what) const;

  uint64_t size_ = 0;
  int fd_ = -1;
  uint8_t* base_ = nullptr;
};

}  // namespace bt86
