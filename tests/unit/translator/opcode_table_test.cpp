// Decoder/classifier round trips: every opcode-table entry has an encoding
// here that decodes to its mnemonic and classifies as the table says, plus
// the operand-form refinements classify() applies on top of the table.
#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "translator/guest_decoder.h"
#include "translator/opcode_table.h"

namespace bt86 {
namespace {

struct Encoding {
  std::vector<uint8_t> bytes;
};

// One encoding per table entry (same order as the table is not required).
const std::vector<Encoding> kTableEncodings = {
    {{0x40}},
    {{0x48}},
    {{0x0F, 0x31}},
    {{0xEB, 0x00}},
    {{0x72, 0x00}},
    {{0x76, 0x00}},
    {{0x7C, 0x00}},
    {{0x7E, 0x00}},
    {{0x73, 0x00}},
    {{0x77, 0x00}},
    {{0x7D, 0x00}},
    {{0x7F, 0x00}},
    {{0x71, 0x00}},
    {{0x7B, 0x00}},
    {{0x79, 0x00}},
    {{0x75, 0x00}},
    {{0x70, 0x00}},
    {{0x7A, 0x00}},
    {{0x78, 0x00}},
    {{0x74, 0x00}},
    {{0x67, 0xE3, 0x00}},
    {{0xE3, 0x00}},
    {{0xE2, 0x00}},
    {{0xE1, 0x00}},
    {{0xE0, 0x00}},
    {{0xE8, 0, 0, 0, 0}},
    {{0xC3}},
    {{0x50}},
    {{0x58}},
    {{0x9C}},
    {{0x66, 0x9C}},
    {{0x9D}},
    {{0x66, 0x9D}},
    {{0xC8, 0x10, 0x00, 0x00}},
    {{0xC9}},
    {{0xFA}},
    {{0xFB}},
    {{0xCC}},
    {{0x0F, 0xFF, 0xC0}},
    {{0x0F, 0xB9, 0xC0}},
    {{0x0F, 0x0B}},
    {{0xF4}},
    {{0x0F, 0xA2}},
    {{0x60}},
    {{0x66, 0x60}},
    {{0x61}},
    {{0x66, 0x61}},
    {{0x27}},
    {{0x2F}},
    {{0x37}},
    {{0x3F}},
    {{0xD4, 0x0A}},
    {{0xD5, 0x0A}},
    {{0xCE}},
    {{0x62, 0x00}},
    {{0xD6}},
    {{0xCD, 0x80}},
    {{0xF1}},
    {{0xCF}},
    {{0x66, 0xCF}},
    {{0xC4, 0x00}},
    {{0xC5, 0x00}},
    {{0x0F, 0xB2, 0x00}},
    {{0x0F, 0xB4, 0x00}},
    {{0x0F, 0xB5, 0x00}},
    {{0x63, 0x00}},
    {{0x0F, 0x02, 0xC0}},
    {{0x0F, 0x03, 0xC0}},
    {{0x0F, 0x00, 0xE0}},
    {{0x0F, 0x00, 0xE8}},
    {{0x0F, 0x01, 0x00}},
    {{0x0F, 0x01, 0x08}},
    {{0x0F, 0x00, 0xC0}},
    {{0x0F, 0x00, 0xC8}},
    {{0x0F, 0x01, 0xE0}},
    {{0x0F, 0x01, 0x10}},
    {{0x0F, 0x01, 0x18}},
    {{0x0F, 0x00, 0xD0}},
    {{0x0F, 0x00, 0xD8}},
    {{0x0F, 0x01, 0xF0}},
    {{0x0F, 0x06}},
    {{0x0F, 0x01, 0x38}},
    {{0x0F, 0x09}},
    {{0x0F, 0x08}},
    {{0x0F, 0x32}},
    {{0x0F, 0x30}},
    {{0x0F, 0x33}},
    {{0xE4, 0x60}},
    {{0xE6, 0x60}},
    {{0x0F, 0x34}},
    {{0x0F, 0x35}},
    {{0x0F, 0x05}},
    {{0x0F, 0x01, 0xC8}},
    {{0x0F, 0x01, 0xC9}},
    {{0x0F, 0xAA}},
};

DecodedInstruction decode(const std::vector<uint8_t>& bytes) {
  DecodedInstruction d;
  EXPECT_EQ(GuestDecoder().decode(0x1000, bytes, &d), DecodeStatus::kOk);
  return d;
}

TEST(OpcodeTable, EveryEntryRoundTrips) {
  std::set<ZydisMnemonic> covered;
  for (const Encoding& e : kTableEncodings) {
    const DecodedInstruction d = decode(e.bytes);
    const OpcodeEntry* entry = nullptr;
    for (const OpcodeEntry& t : opcode_table()) {
      if (t.mnemonic == d.mnemonic()) entry = &t;
    }
    ASSERT_NE(entry, nullptr) << ZydisMnemonicGetString(d.mnemonic());
    const OpcodeEntry c = classify(d);
    EXPECT_EQ(c.kind, entry->kind) << ZydisMnemonicGetString(d.mnemonic());
    EXPECT_EQ(c.emitter, entry->emitter) << ZydisMnemonicGetString(d.mnemonic());
    EXPECT_EQ(c.callout, entry->callout) << ZydisMnemonicGetString(d.mnemonic());
    covered.insert(d.mnemonic());
  }
  for (const OpcodeEntry& t : opcode_table()) {
    EXPECT_TRUE(covered.count(t.mnemonic))
        << "no encoding for " << ZydisMnemonicGetString(t.mnemonic);
  }
  EXPECT_EQ(covered.size(), opcode_table().size()) << "duplicate table entries";
}

struct FormCase {
  std::vector<uint8_t> bytes;
  TranslationKind kind;
  Emitter emitter;
  CalloutId callout = CalloutId::kNone;
};

TEST(OpcodeTable, OperandFormsRefineTheTable) {
  using K = TranslationKind;
  using E = Emitter;
  using C = CalloutId;
  const FormCase cases[] = {
      {{0x0F, 0x22, 0xD8}, K::kCallout, E::kCallout, C::kSystem},    // mov cr3, eax
      {{0x0F, 0x20, 0xC0}, K::kCallout, E::kCallout, C::kSystem},    // mov eax, cr0
      {{0x01, 0xD8}, K::kIdent, E::kIdent},                          // add eax, ebx
      {{0xC3}, K::kCompensated, E::kRet},                            // ret
      {{0x8C, 0xD8}, K::kCompensated, E::kMoveFromSegment},          // mov eax, ds
      {{0x8E, 0xD8}, K::kCompensated, E::kLoadSegment, C::kSystem},  // mov ds, ax
      {{0x8E, 0xD0}, K::kCallout, E::kCallout, C::kSystem},          // mov ss, ax
      {{0x0E}, K::kCompensated, E::kPushSegment},                    // push cs
      {{0x1F}, K::kCompensated, E::kLoadSegment, C::kSystem},        // pop ds
      {{0x17}, K::kCallout, E::kCallout, C::kSystem},                // pop ss
      {{0x0F, 0x00, 0x28}, K::kCompensated, E::kVerw, C::kSystem},   // verw [eax]
      {{0xA5}, K::kCompensated, E::kString},                         // movsd
      {{0xF3, 0xAB}, K::kCompensated, E::kString},                   // rep stosd
      {{0xF2, 0x0F, 0x10, 0xC1}, K::kIdent, E::kIdent},              // movsd xmm0, xmm1
      {{0xD9, 0x00}, K::kIdent, E::kIdent},                          // fld dword [eax]
      {{0x0F, 0x58, 0x00}, K::kIdent, E::kIdent},                    // addps xmm0, [eax]
      {{0x67, 0x8B, 0x00}, K::kIdent, E::kIdent},  // 16-bit addressing (compensated when emitted)
      {{0xEA, 0, 0, 0, 0, 8, 0}, K::kCallout, E::kCallout, C::kSystem},       // jmp far
      {{0xFF, 0x10}, K::kCompensated, E::kCallIndirect},                      // call [eax]
      {{0xFF, 0xE0}, K::kCompensated, E::kJmpIndirect},                       // jmp eax
      {{0xC8, 0x10, 0x00, 0x02}, K::kCallout, E::kCallout, C::kEnterNested},  // enter 16, 2
      {{0x6C}, K::kCallout, E::kCallout, C::kSystem},                         // insb
      {{0x0F, 0x01, 0xD0}, K::kIdent, E::kIdent},                             // xgetbv
  };
  for (const FormCase& c : cases) {
    const OpcodeEntry e = classify(decode(c.bytes));
    EXPECT_EQ(e.kind, c.kind) << std::hex << int(c.bytes[0]) << " " << int(c.bytes[1]);
    EXPECT_EQ(e.emitter, c.emitter) << std::hex << int(c.bytes[0]) << " " << int(c.bytes[1]);
    EXPECT_EQ(e.callout, c.callout) << std::hex << int(c.bytes[0]) << " " << int(c.bytes[1]);
  }
}

struct TranscodeCase {
  std::vector<uint8_t> code_16;
  std::vector<uint8_t> code_32;
};

// 16-bit code becomes the 32-bit instruction that does the same: the
// operand-size prefix toggled unless it names another instruction (MMX,
// SSE), the address-size prefix toggled where addresses are formed. Byte
// forms get a 66 that changes nothing.
TEST(GuestDecoder, TranscodesSixteenBitCode) {
  const TranscodeCase cases[] = {
      {{0x01, 0xC3}, {0x66, 0x01, 0xC3}},                    // add bx, ax
      {{0x66, 0x01, 0xC3}, {0x01, 0xC3}},                    // add ebx, eax
      {{0x8B, 0x00}, {0x66, 0x67, 0x8B, 0x00}},              // mov ax, [bx+si]
      {{0x67, 0x8B, 0x06}, {0x66, 0x8B, 0x06}},              // mov ax, [esi]
      {{0x26, 0x88, 0x07}, {0x66, 0x67, 0x26, 0x88, 0x07}},  // mov es:[bx], al
      {{0x8D, 0x40, 0x05}, {0x66, 0x67, 0x8D, 0x40, 0x05}},  // lea ax, [bx+si+5]
      {{0x0F, 0x6F, 0xC1}, {0x0F, 0x6F, 0xC1}},              // movq mm0, mm1
      {{0x0F, 0x58, 0xC1}, {0x0F, 0x58, 0xC1}},              // addps xmm0, xmm1
      {{0x66, 0x0F, 0x58, 0xC1}, {0x66, 0x0F, 0x58, 0xC1}},  // addpd xmm0, xmm1
      {{0xE8, 0x10, 0x00}, {0x66, 0xE8, 0x10, 0x00}},        // call rel16
      {{0xE2, 0xFE}, {0x66, 0x67, 0xE2, 0xFE}},              // loop (CX)
      {{0x50}, {0x66, 0x50}},                                // push ax
      {{0xF3, 0xA4}, {0x66, 0x67, 0xF3, 0xA4}},              // rep movsb (CX, SI, DI)
  };
  for (const TranscodeCase& c : cases) {
    DecodedInstruction d16;
    ASSERT_EQ(GuestDecoder().decode(0x100, c.code_16, &d16, true), DecodeStatus::kOk);
    EXPECT_EQ(d16.length(), c.code_16.size());
    EXPECT_EQ(d16.next_eip(), 0x100 + c.code_16.size());
    const std::vector<uint8_t> bytes(d16.bytes.begin(), d16.bytes.begin() + d16.insn.length);
    EXPECT_EQ(bytes, c.code_32) << ZydisMnemonicGetString(d16.mnemonic());
  }
  DecodedInstruction call;
  ASSERT_EQ(GuestDecoder().decode(0xFFF0, std::vector<uint8_t>{0xE8, 0x20, 0x00}, &call, true),
            DecodeStatus::kOk);
  EXPECT_EQ(call.branch_target(), 0x0013u);  // IP wraps at 64 KiB.
}

TEST(GuestDecoder, ReportsTruncatedAndInvalidBytes) {
  DecodedInstruction d;
  const uint8_t truncated[] = {0xB8, 0x01};
  EXPECT_EQ(GuestDecoder().decode(0, truncated, &d), DecodeStatus::kTruncated);
  const uint8_t invalid[] = {0x0F, 0xFF};
  EXPECT_NE(GuestDecoder().decode(0, invalid, &d), DecodeStatus::kOk);
}

}  // namespace
}  // namespace bt86
