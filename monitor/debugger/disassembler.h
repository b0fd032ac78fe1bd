// Capstone disassembly for the debugger: 32-bit guest code (disas, gdt
// gate targets), 16-bit guest code (a code segment with D clear) and the
// 64-bit host code the translator emitted (translate).
//
//   Disassembler guest(Disassembler::Mode::kGuest32);
//   for (const auto& line : guest.disassemble(bytes, eip, 10)) ...
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace bt86 {

class Disassembler {
 public:
  enum class Mode { kGuest32, kGuest16, kHost64 };
  static Mode guest_mode(bool code_16) { return code_16 ? Mode::kGuest16 : Mode::kGuest32; }
  struct Line {
    uint64_t address = 0;
    uint32_t size = 0;
    std::string bytes;  // "8b 03"
    std::string text;   // "mov eax, dword ptr [ebx]"
  };

  // Throws std::runtime_error if Capstone cannot be opened.
  explicit Disassembler(Mode mode);
  ~Disassembler();
  Disassembler(const Disassembler&) = delete;
  Disassembler& operator=(const Disassembler&) = delete;

  // At most max_count instructions; stops early at undecodable bytes,
  // which then appear as one "(bad)" line of one byte.
  std::vector<Line> disassemble(std::span<const uint8_t> code, uint64_t address,
                                size_t max_count) const;

 private:
  size_t handle_ = 0;
};

}  // namespace bt86
