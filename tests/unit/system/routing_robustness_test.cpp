// Every encoding the dispatcher accepts, with registers and memory in
// arbitrary states, ends in one of the four outcomes: nothing throws, no
// exception a handler cannot raise escapes, and shutdowns say why.
#include <gtest/gtest.h>

#include <random>

#include "runtime/system/guest_event.h"
#include "runtime/system/system_instructions.h"
#include "system_test_context.h"

namespace bt86::test {
namespace {

using Kind = SystemOutcome::Kind;

bool raisable(uint8_t vec) {
  switch (vec) {
    case vector::kUd:
    case vector::kTs:
    case vector::kNp:
    case vector::kSs:
    case vector::kGp:
    case vector::kPf:
      return true;
    default:
      return false;
  }
}

TEST(RoutingRobustnessTest, EveryRoutedEncodingEndsInADefinedOutcome) {
  SystemTestContext ctx;
  ctx.set_gate(0x80, descriptor_type::kTrapGate32, sel::kCode0, 0x500000, 3);
  std::mt19937 random(86);
  const GuestDecoder decoder;
  int routed = 0;
  for (int prefix : {-1, 0x66, 0xF3, 0x64}) {
    for (int escape = 0; escape < 2; ++escape) {
      for (int opcode = 0; opcode < 256; ++opcode) {
        for (int modrm : {0x03, 0x1B, 0xC0, 0xC3, 0xD8, 0xE0, 0xE8, 0xF8}) {
          std::vector<uint8_t> bytes;
          if (prefix >= 0) bytes.push_back(static_cast<uint8_t>(prefix));
          if (escape) bytes.push_back(0x0F);
          bytes.push_back(static_cast<uint8_t>(opcode));
          bytes.push_back(static_cast<uint8_t>(modrm));
          for (int i = 0; i < 6; ++i) bytes.push_back(static_cast<uint8_t>(random()));
          for (bool user : {false, true}) {
            ctx.enter_cpl0();
            if (user) ctx.enter_cpl3();
            CpuState& cpu = ctx.cpu();
            for (int r = 0; r < kNumGprs; ++r) {
              if (r != static_cast<int>(Gpr::kEsp)) cpu.gpr[r] = random() & 0xFFFFF;
            }
            DecodedInstruction d;
            if (decoder.decode(cpu.eip, bytes, &d) != DecodeStatus::kOk) continue;
            if (!is_system_instruction(d)) continue;
            ++routed;
            SystemOutcome o;
            ASSERT_NO_THROW(o = execute_system_instruction(ctx, d))
                << ZydisMnemonicGetString(d.mnemonic());
            if (o.kind == Kind::kException) {
              EXPECT_TRUE(raisable(o.exception.vector))
                  << ZydisMnemonicGetString(d.mnemonic()) << " raised " << int{o.exception.vector};
            }
            if (o.kind == Kind::kShutdown) {
              EXPECT_FALSE(o.message.empty());
            }
          }
        }
      }
    }
  }
  EXPECT_GT(routed, 500);
}

}  // namespace
}  // namespace bt86::test
