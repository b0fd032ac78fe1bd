// Test helper: assembles 32-bit guest code with asmjit at a guest address
// and loads it into a FlatHarness.
#pragma once

#include <asmjit/x86.h>
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <initializer_list>
#include <stdexcept>
#include <vector>

#include "runtime/flat_harness.h"

namespace bt86::test {

// Embeds bytes as they are: forms asmjit has no mnemonic for or would
// encode differently (prefix orders, redundant prefixes, 16-bit forms).
inline void raw(asmjit::x86::Assembler& a, std::initializer_list<uint8_t> bytes) {
  a.embed(std::data(bytes), bytes.size());
}

inline std::vector<uint8_t> assemble32(uint32_t base,
                                       const std::function<void(asmjit::x86::Assembler&)>& body) {
  asmjit::CodeHolder code;
  code.init(asmjit::Environment(asmjit::Arch::kX86), base);
  asmjit::x86::Assembler a(&code);
  body(a);
  code.flatten();
  code.resolveUnresolvedLinks();
  code.relocateToBase(base);
  std::vector<uint8_t> bytes(code.codeSize());
  if (code.copyFlattenedData(bytes.data(), bytes.size()) != asmjit::kErrorOk) {
    throw std::runtime_error("assembly failed");
  }
  return bytes;
}

inline void load32(FlatHarness& h, uint32_t base,
                   const std::function<void(asmjit::x86::Assembler&)>& body) {
  auto bytes = assemble32(base, body);
  std::memcpy(h.memory().data() + base, bytes.data(), bytes.size());
}

// Loads body at code, drops translations of earlier programs there (tests
// reuse one harness for several), and runs it from the initial state with
// ESP = stack as setup leaves it.
inline FlatRunResult run32(FlatHarness& h, uint32_t code, uint32_t stack,
                           const std::function<void(asmjit::x86::Assembler&)>& body,
                           const std::function<void(CpuState&)>& setup = {}) {
  load32(h, code, body);
  h.invalidate(code, 0x1000);
  CpuState s = FlatHarness::initial_state(code, stack);
  if (setup) setup(s);
  return h.run(s);
}

// The run ended in a #PF at address with error_code.
inline void expect_page_fault(const FlatRunResult& r, uint32_t address, uint32_t error_code) {
  ASSERT_EQ(r.stop, FlatRunResult::Stop::kException);
  ASSERT_TRUE(r.exception.has_value());
  EXPECT_EQ(r.exception->vector, vector::kPf);
  EXPECT_EQ(r.exception->fault_address, std::optional<uint32_t>(address));
  EXPECT_EQ(r.exception->error_code, std::optional<uint32_t>(error_code));
}

// rep movsd 64 bytes from 0x10000 to 0x20000, rep movsb backwards (DF=1)
// 64 bytes from 0x10000 to 0x30000, then rep stosw of 0xABCD three times
// at 0x40000; DF is clear at the end.
inline void emit_string_copies(asmjit::x86::Assembler& a) {
  using namespace asmjit;
  a.mov(x86::esi, 0x10000);
  a.mov(x86::edi, 0x20000);
  a.mov(x86::ecx, 16);
  raw(a, {0xF3, 0xA5});  // rep movsd
  a.std();
  a.mov(x86::esi, 0x1003F);
  a.mov(x86::edi, 0x3003F);
  a.mov(x86::ecx, 64);
  raw(a, {0xF3, 0xA4});  // rep movsb, backwards
  a.cld();
  a.mov(x86::edi, 0x40000);
  a.mov(x86::eax, 0xABCD);
  a.mov(x86::ecx, 3);
  raw(a, {0x66, 0xF3, 0xAB});  // rep stosw
}

// EAX = 1000 + 999 + ... + 1 by a loop of add, dec, jnz; then hlt (12 bytes
// before the hlt: mov 5, xor 2, add 2, dec 1, jnz 2).
inline void emit_sum_loop(asmjit::x86::Assembler& a) {
  asmjit::Label loop = a.newLabel();
  a.mov(asmjit::x86::ecx, 1000);
  a.xor_(asmjit::x86::eax, asmjit::x86::eax);
  a.bind(loop);
  a.add(asmjit::x86::eax, asmjit::x86::ecx);
  a.dec(asmjit::x86::ecx);
  a.jnz(loop);
  a.hlt();
}

inline void load_bytes(FlatHarness& h, uint32_t base, std::initializer_list<uint8_t> bytes) {
  std::memcpy(h.memory().data() + base, std::data(bytes), bytes.size());
}

}  // namespace bt86::test
