// Emitter byte-level checks for the 64-bit encoding pitfalls, verified by
// decoding the emitted host code with Zydis in 64-bit mode.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "translator/translation_cache.h"
#include "translator/translator.h"

namespace bt86 {
namespace {

class BytesSource : public CodeSource {
 public:
  BytesSource(uint32_t base, std::vector<uint8_t> bytes) : base_(base), bytes_(std::move(bytes)) {}
  size_t fetch(uint32_t eip, std::span<uint8_t> buffer, uint32_t* error) override {
    *error = 0;
    if (eip < base_ || eip >= base_ + bytes_.size()) return 0;
    size_t n = std::min(buffer.size(), bytes_.size() - (eip - base_));
    std::memcpy(buffer.data(), bytes_.data() + (eip - base_), n);
    return n;
  }

 private:
  uint32_t base_;
  std::vector<uint8_t> bytes_;
};

struct HostInstruction {
  ZydisDecodedInstruction insn;
  ZydisDecodedOperand operands[ZYDIS_MAX_OPERAND_COUNT];
  std::vector<uint8_t> bytes;
};

// The host instructions implementing the first guest instruction of a unit
// translated from bytes (unit prologue excluded).
std::vector<HostInstruction> host_code_for(std::vector<uint8_t> guest, size_t index = 0) {
  TranslationCache cache(1 << 20);
  Translator translator(cache, {});
  BytesSource source(0x1000, std::move(guest));
  TranslationUnit& unit = translator.translate(0x1000, source);
  const InstructionMap& m = unit.instructions.at(index);
  ZydisDecoder decoder;
  ZydisDecoderInit(&decoder, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
  const auto* code = reinterpret_cast<const uint8_t*>(unit.host_start);
  std::vector<HostInstruction> out;
  // The first instruction's range starts at 0 and includes the poll load.
  size_t offset = m.host_begin;
  bool skip_prologue = index == 0;
  while (offset < m.host_end) {
    HostInstruction h;
    EXPECT_TRUE(ZYAN_SUCCESS(
        ZydisDecoderDecodeFull(&decoder, code + offset, m.host_end - offset, &h.insn, h.operands)));
    h.bytes.assign(code + offset, code + offset + h.insn.length);
    offset += h.insn.length;
    if (skip_prologue) {
      skip_prologue = false;
      continue;
    }
    out.push_back(h);
  }
  return out;
}

const ZydisDecodedOperand* memory_operand(const HostInstruction& h) {
  for (int i = 0; i < h.insn.operand_count; ++i) {
    if (h.operands[i].type == ZYDIS_OPERAND_TYPE_MEMORY &&
        h.operands[i].visibility == ZYDIS_OPERAND_VISIBILITY_EXPLICIT) {
      return &h.operands[i];
    }
  }
  return nullptr;
}

TEST(UnitEmitter, OneByteIncDecBecomeModrmForms) {
  auto inc = host_code_for({0x40, 0xF4});
  ASSERT_EQ(inc.size(), 1u);
  EXPECT_EQ(inc[0].insn.mnemonic, ZYDIS_MNEMONIC_INC);
  EXPECT_EQ(inc[0].operands[0].reg.value, ZYDIS_REGISTER_EAX);
  EXPECT_EQ(inc[0].bytes, (std::vector<uint8_t>{0xFF, 0xC0}));
  auto dec = host_code_for({0x66, 0x4F, 0xF4});
  ASSERT_EQ(dec.size(), 1u);
  EXPECT_EQ(dec[0].insn.mnemonic, ZYDIS_MNEMONIC_DEC);
  EXPECT_EQ(dec[0].operands[0].reg.value, ZYDIS_REGISTER_DI);
}

TEST(UnitEmitter, AbsoluteDisp32IsNotRipRelative) {
  auto h = host_code_for({0x8B, 0x05, 0x78, 0x56, 0x34, 0x12, 0xF4});  // mov eax, [0x12345678]
  ASSERT_EQ(h.size(), 1u);
  const ZydisDecodedOperand* m = memory_operand(h[0]);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->mem.base, ZYDIS_REGISTER_NONE);
  EXPECT_EQ(m->mem.index, ZYDIS_REGISTER_NONE);
  EXPECT_EQ(m->mem.disp.value, 0x12345678);
  EXPECT_EQ(m->mem.segment, ZYDIS_REGISTER_GS);
  EXPECT_EQ(h[0].insn.address_width, 32);
}

TEST(UnitEmitter, MemoryOperandsGetGsAndAddressSizePrefixes) {
  const std::vector<std::vector<uint8_t>> guests = {
      {0x89, 0x4B, 0x04, 0xF4},              // mov [ebx+4], ecx
      {0x26, 0x03, 0x04, 0x8E, 0xF4},        // add eax, es:[esi+ecx*4]
      {0x0F, 0x28, 0x00, 0xF4},              // movaps xmm0, [eax]
      {0xDD, 0x44, 0x24, 0x08, 0xF4},        // fld qword [esp+8]
      {0xA1, 0x00, 0x10, 0x00, 0x00, 0xF4},  // mov eax, [moffs32]
  };
  for (const auto& g : guests) {
    auto h = host_code_for(g);
    // An x87 or SSE instruction first passes the FPU gate (three host
    // instructions); the instruction itself comes last.
    if (h.size() == 4) h.erase(h.begin(), h.begin() + 3);
    ASSERT_EQ(h.size(), 1u);
    EXPECT_EQ(h[0].bytes[0], 0x65);
    EXPECT_EQ(h[0].bytes[1], 0x67);
    const ZydisDecodedOperand* m = memory_operand(h[0]);
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(m->mem.segment, ZYDIS_REGISTER_GS);
    EXPECT_EQ(h[0].insn.address_width, 32);
    EXPECT_EQ(h[0].insn.length, g.size() - 1 + 2 - (g[0] == 0x26 ? 1 : 0));
  }
}

// The guest's x87/SSE state is loaded lazily: a unit jumps through the
// context's gate once, before its first instruction that needs the state,
// and integer code never does.
TEST(UnitEmitter, TheFirstFpuInstructionOfAUnitPassesTheGateOnce) {
  const std::vector<uint8_t> code = {0x01, 0xC8,        // add eax, ecx
                                     0x0F, 0x28, 0xC1,  // movaps xmm0, xmm1
                                     0xD9, 0xE8,        // fld1
                                     0xF4};
  auto is_gate_jump = [](const HostInstruction& h) {
    return h.insn.mnemonic == ZYDIS_MNEMONIC_JMP &&
           h.operands[0].type == ZYDIS_OPERAND_TYPE_MEMORY &&
           h.operands[0].mem.base == ZYDIS_REGISTER_R15 &&
           h.operands[0].mem.disp.value == ctx_offset::kFpuGate;
  };
  auto gates = [&](size_t index) {
    auto h = host_code_for(code, index);
    return std::count_if(h.begin(), h.end(), is_gate_jump);
  };
  EXPECT_EQ(gates(0), 0);
  EXPECT_EQ(gates(1), 1);
  EXPECT_EQ(gates(2), 0) << "the state is live for the rest of the unit";
  auto movaps = host_code_for(code, 1);
  ASSERT_EQ(movaps.size(), 4u);
  EXPECT_EQ(movaps[3].insn.mnemonic, ZYDIS_MNEMONIC_MOVAPS);
}

TEST(UnitEmitter, StackOperationsNeverUseTheHostStack) {
  const std::vector<std::vector<uint8_t>> guests = {
      {0x50, 0xF4},              // push eax
      {0x5B, 0xF4},              // pop ebx
      {0xFF, 0x36, 0xF4},        // push [esi]
      {0x8F, 0x06, 0xF4},        // pop [esi]
      {0xC8, 0x08, 0x00, 0x00},  // enter 8, 0
      {0xC9, 0xF4},              // leave
  };
  for (const auto& g : guests) {
    for (const HostInstruction& h : host_code_for(g)) {
      EXPECT_NE(h.insn.mnemonic, ZYDIS_MNEMONIC_PUSH);
      EXPECT_NE(h.insn.mnemonic, ZYDIS_MNEMONIC_POP);
      EXPECT_NE(h.insn.mnemonic, ZYDIS_MNEMONIC_CALL);
      if (const ZydisDecodedOperand* m = memory_operand(h); m != nullptr &&
                                                            h.insn.mnemonic != ZYDIS_MNEMONIC_LEA &&
                                                            m->mem.base != ZYDIS_REGISTER_R15) {
        EXPECT_EQ(m->mem.segment, ZYDIS_REGISTER_GS);
        EXPECT_EQ(h.insn.address_width, 32);
      }
    }
  }
}

TEST(UnitEmitter, Alias82BecomesOpcode80) {
  auto h = host_code_for({0x82, 0xC0, 0x05, 0xF4});  // add al, 5 (0x82 alias)
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0].insn.mnemonic, ZYDIS_MNEMONIC_ADD);
  EXPECT_EQ(h[0].bytes, (std::vector<uint8_t>{0x80, 0xC0, 0x05}));
}

TEST(UnitEmitter, HighByteRegistersKeepTheirMeaning) {
  auto h = host_code_for({0x88, 0xE7, 0xF4});  // mov bh, ah
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0].operands[0].reg.value, ZYDIS_REGISTER_BH);
  EXPECT_EQ(h[0].operands[1].reg.value, ZYDIS_REGISTER_AH);
}

}  // namespace
}  // namespace bt86
