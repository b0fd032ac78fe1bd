// The translation cache's code index: units found by key, retired by the
// physical bytes they came from, detached without retiring.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "translator/translation_cache.h"
#include "translator/translator.h"

namespace bt86 {
namespace {

class BytesSource final : public CodeSource {
 public:
  explicit BytesSource(std::vector<uint8_t> bytes, uint32_t base)
      : bytes_(std::move(bytes)), base_(base) {}
  size_t fetch(uint32_t eip, std::span<uint8_t> buffer, uint32_t* fault) override {
    *fault = 0;
    size_t n = 0;
    while (n < buffer.size() && eip - base_ + n < bytes_.size()) {
      buffer[n] = bytes_[eip - base_ + n];
      ++n;
    }
    return n;
  }

 private:
  std::vector<uint8_t> bytes_;
  uint32_t base_;
};

TEST(CodeIndex, RetiresExactlyTheUnitsTranslatedFromWrittenBytes) {
  TranslationCache cache(1 << 20);
  Translator translator(cache, {});
  // nop; nop; ret at 0x1000 and again at 0x1010.
  BytesSource source({0x90, 0x90, 0xC3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x90, 0x90, 0xC3},
                     0x1000);
  TranslationUnit& a = translator.translate({0x1000, 0x1, 0, {}}, TranslationMode{}, source);
  a.code = {{0x1, 0x1000, 3}};
  cache.index_code(a);
  TranslationUnit& b = translator.translate({0x1010, 0x1, 0, {}}, TranslationMode{}, source);
  b.code = {{0x1, 0x1010, 3}};
  cache.index_code(b);

  EXPECT_EQ(cache.find(0x1000, 0x1, TranslationMode{}), &a);
  EXPECT_EQ(cache.find(0x1000, 0x2, TranslationMode{}), nullptr) << "another frame is another unit";
  EXPECT_EQ(cache.units_from_physical(0x1003, 0x1010).size(), 0u) << "bytes between units";
  auto hit = cache.units_from_physical(0x1011, 0x1012);
  ASSERT_EQ(hit.size(), 1u);
  EXPECT_EQ(hit[0], &b);
  cache.retire(b);
  EXPECT_EQ(cache.find(0x1010, 0x1, TranslationMode{}), nullptr);
  EXPECT_TRUE(cache.frame_has_code(0x1));
  cache.retire(a);
  EXPECT_FALSE(cache.frame_has_code(0x1));
}

// CPL 0 units are shared by the modes that differ only in the FPU bits and
// in whether the unrouted one of FS/GS is compensated, unless an instruction
// of theirs depends on those; not by modes that compensate DS or SS, which
// nearly every access goes through.
TEST(CodeIndex, KernelUnitsWithoutFpuOrUnroutedSegmentCodeAreSharedByModes) {
  TranslationCache cache(1 << 20);
  Translator translator(cache, {});
  BytesSource source({0x90, 0xC3,                     // 0x1000: nop; ret
                      0x9B, 0xC3,                     // 0x1002: fwait; ret
                      0x65, 0xA1, 0, 0, 0, 0, 0xC3,   // 0x1004: mov eax, gs:[0]; ret
                      0x64, 0xA1, 0, 0, 0, 0, 0xC3,   // 0x100b: mov eax, fs:[0]; ret
                      0x2E, 0xA1, 0, 0, 0, 0, 0xC3},  // 0x1012: mov eax, cs:[0]; ret
                     0x1000);
  TranslationMode kernel;
  TranslationMode kernel_ts = kernel;
  kernel_ts.fpu = fpu_mode::kTs | fpu_mode::kMp;
  kernel_ts.compensated = TranslationMode::segment_bit(ZYDIS_REGISTER_GS);
  TranslationMode kernel_based_ds = kernel;
  kernel_based_ds.compensated = TranslationMode::segment_bit(ZYDIS_REGISTER_DS);
  TranslationMode user = kernel;
  user.cpl = 3;
  const auto translate = [&](uint32_t eip, const TranslationMode& mode) -> TranslationUnit& {
    return translator.translate({eip, 0x1, mode.key(), {}}, mode, source);
  };

  TranslationUnit& plain = translate(0x1000, kernel);
  EXPECT_EQ(cache.find(0x1000, 0x1, kernel_ts), &plain);
  EXPECT_EQ(cache.find(0x1000, 0x1, kernel_based_ds), nullptr);
  EXPECT_EQ(cache.find(0x1000, 0x1, user), nullptr);
  TranslationUnit& plain_user = translate(0x1000, user);
  EXPECT_NE(&plain_user, &plain);
  EXPECT_EQ(cache.find(0x1000, 0x1, user), &plain_user);

  translate(0x1002, kernel);
  EXPECT_EQ(cache.find(0x1002, 0x1, kernel_ts), nullptr) << "fwait depends on CR0.TS and MP";
  translate(0x1004, kernel);
  EXPECT_EQ(cache.find(0x1004, 0x1, kernel_ts), nullptr) << "gs: depends on GS's compensation";
  TranslationUnit& routed = translate(0x100b, kernel);
  EXPECT_EQ(cache.find(0x100b, 0x1, kernel_ts), &routed) << "fs: is routed in both";
  // Linux runs verw %cs:... on every return to user space: units naming a
  // flat CS stay shared.
  TranslationUnit& code_segment = translate(0x1012, kernel);
  EXPECT_EQ(cache.find(0x1012, 0x1, kernel_ts), &code_segment) << "cs: is flat in both";

  EXPECT_TRUE(TranslationMode::link_keeps_mode(kernel.key(), plain.key.mode));
  EXPECT_FALSE(TranslationMode::link_keeps_mode(plain.key.mode, kernel.key()));
}

TEST(CodeIndex, DetachKeepsTheUnitButDropsItsLookupEntry) {
  TranslationCache cache(1 << 20);
  Translator translator(cache, {});
  BytesSource source({0x90, 0xC3}, 0x2000);
  TranslationUnit& u = translator.translate({0x2000, 0x2, 0, {}}, TranslationMode{}, source);
  u.code = {{0x2, 0x2000, 2}};
  cache.index_code(u);
  cache.lookup_for_mode(3).insert(0x2000, u.host_start);
  const auto* entries =
      reinterpret_cast<const IndirectLookupEntry*>(cache.lookup_for_mode(3).address());
  EXPECT_EQ(entries[0x2000 & IndirectLookupTable::kIndexMask].host, u.host_start);
  cache.detach(u);
  EXPECT_NE(entries[0x2000 & IndirectLookupTable::kIndexMask].host, u.host_start);
  EXPECT_TRUE(u.live);
  EXPECT_EQ(cache.units_on_linear_page(0x2).size(), 1u);
}

TEST(CodeIndex, LookupTablesOfAlternatingModesKeepTheirEntries) {
  TranslationCache cache(1 << 20);
  const auto entry_of = [](IndirectLookupTable& t, uint32_t eip) {
    return reinterpret_cast<const IndirectLookupEntry*>(
        t.address())[eip & IndirectLookupTable::kIndexMask];
  };
  cache.lookup_for_mode(0).insert(0x1000, 0xAAAA);
  cache.lookup_for_mode(8).insert(0x1000, 0xBBBB);
  EXPECT_EQ(entry_of(cache.lookup_for_mode(0), 0x1000).host, 0xAAAAu);
  EXPECT_EQ(entry_of(cache.lookup_for_mode(8), 0x1000).host, 0xBBBBu);
  // Choosing more modes than there are tables reuses the least recently
  // chosen one, emptied: mode 8 was chosen last, so mode 0's table goes.
  for (uint32_t mode = 1; mode < TranslationCache::kLookupTables; ++mode) {
    cache.lookup_for_mode(8);
    cache.lookup_for_mode(mode * 16);
  }
  EXPECT_EQ(entry_of(cache.lookup_for_mode(8), 0x1000).host, 0xBBBBu);
  EXPECT_NE(entry_of(cache.lookup_for_mode(0), 0x1000).host, 0xAAAAu);
}

// unlink_all visits only the units that were linked to and the lookup
// slots that were filled, until too many were: either way nothing stays.
TEST(CodeIndex, UnlinkAllRestoresEveryLinkedExitAndEmptiesTheLookups) {
  TranslationCache cache(1 << 20);
  Translator translator(cache, {});
  // 0x3000: jmp 0x3010; 0x3010: nop; ret.
  std::vector<uint8_t> bytes(0x12, 0);
  bytes[0] = 0xEB;
  bytes[1] = 0x0E;
  bytes[0x10] = 0x90;
  bytes[0x11] = 0xC3;
  BytesSource source(bytes, 0x3000);
  TranslationUnit& from = translator.translate({0x3000, 0x3, 0, {}}, TranslationMode{}, source);
  TranslationUnit& to = translator.translate({0x3010, 0x3, 0, {}}, TranslationMode{}, source);
  ASSERT_FALSE(from.exits.empty());
  const uint32_t exit_id = from.exits.front();
  ASSERT_EQ(cache.exit(exit_id).guest_target, 0x3010u);
  cache.link(exit_id, to, false);
  EXPECT_EQ(cache.exit(exit_id).linked_to, to.host_start);

  IndirectLookupTable& lookup = cache.lookup_for_mode(0);
  lookup.insert(0x3010, to.host_start);
  cache.unlink_all();
  EXPECT_EQ(cache.exit(exit_id).linked_to, 0u);
  EXPECT_TRUE(to.incoming_links.empty());
  EXPECT_EQ(lookup.find(0x3010), 0u);

  cache.link(exit_id, to, false);
  for (uint32_t eip = 0; eip <= IndirectLookupTable::kIndexMask; ++eip) lookup.insert(eip, 0x1234);
  cache.unlink_all();
  EXPECT_EQ(cache.exit(exit_id).linked_to, 0u) << "linked again after the first unlink_all";
  for (uint32_t eip = 0; eip <= IndirectLookupTable::kIndexMask; ++eip) {
    ASSERT_EQ(lookup.find(eip), 0u) << "slot of " << eip;
  }
}

// A unit's branch to its own start is linked past its poll load; a kick in
// that unit points it back at the entry, so that the loop meets the poll, and
// restore_loops() links it past the poll again.
TEST(CodeIndex, OwnLoopSkipsThePollLoadUntilAKickBreaksIt) {
  TranslationCache cache(1 << 20);
  Translator translator(cache, {});
  // 0x4000: inc eax; jmp 0x4000.
  BytesSource source({0x40, 0xEB, 0xFD}, 0x4000);
  TranslationUnit& loop = translator.translate({0x4000, 0x4, 0, {}}, TranslationMode{}, source);
  ASSERT_FALSE(loop.exits.empty());
  const uint32_t exit_id = loop.exits.front();
  const ExitRecord& exit = cache.exit(exit_id);
  ASSERT_EQ(exit.guest_target, 0x4000u);
  ASSERT_GT(loop.loop_entry, loop.host_start);
  const auto jump_target = [&] {
    int32_t rel;
    std::memcpy(&rel, reinterpret_cast<const void*>(exit.patch_site - 4), sizeof rel);
    return exit.patch_site + static_cast<int64_t>(rel);
  };

  cache.link(exit_id, loop, false);
  EXPECT_EQ(exit.linked_to, loop.loop_entry);
  EXPECT_EQ(jump_target(), loop.loop_entry);

  cache.break_loop_at(0x1000);
  EXPECT_EQ(jump_target(), loop.loop_entry) << "a kick outside the cache changes nothing";
  cache.break_loop_at(loop.loop_entry + 1);
  EXPECT_EQ(exit.linked_to, loop.host_start);
  EXPECT_EQ(jump_target(), loop.host_start);

  cache.restore_loops();
  EXPECT_EQ(exit.linked_to, loop.loop_entry);
  EXPECT_EQ(jump_target(), loop.loop_entry);

  cache.retire(loop);
  EXPECT_EQ(exit.linked_to, 0u);
  EXPECT_EQ(jump_target(), exit.stub);
}

// A guard chunk's gate selects, for all its units at once, their entries
// (open) or their guard stubs (closed); the guard each unit jumps through is
// rewritten to read the gate when the unit joins.
TEST(CodeIndex, GuardChunkGateSelectsEntriesOrStubsForAllItsUnits) {
  TranslationCache cache(1 << 20);
  Translator translator(cache, {});
  BytesSource source({0x90, 0xC3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x90, 0xC3}, 0x3000);
  TranslationUnit& a = translator.translate({0x3000, 0x3, 0, {}}, TranslationMode{}, source);
  TranslationUnit& b = translator.translate({0x3010, 0x3, 0, {}}, TranslationMode{}, source);
  const auto exec_u64 = [](uint64_t address) {
    uint64_t v;
    std::memcpy(&v, reinterpret_cast<const void*>(address), sizeof v);
    return v;
  };
  // Before joining, the guard is a jmp rel32 to the unit's own guard stub.
  const auto* guard = reinterpret_cast<const uint8_t*>(a.guarded_entry);
  EXPECT_EQ(guard[0], 0xE9);
  const uint32_t chunk = cache.new_guard_chunk(2);
  ASSERT_NE(chunk, kNoGuardChunk);
  ASSERT_TRUE(cache.join_guard_chunk(chunk, a));
  ASSERT_TRUE(cache.join_guard_chunk(chunk, b));
  TranslationUnit& c = translator.translate({0x3000, 0x3, 1, {}}, TranslationMode{}, source);
  EXPECT_FALSE(cache.join_guard_chunk(chunk, c)) << "the chunk is full";
  EXPECT_FALSE(cache.join_guard_chunk(cache.new_guard_chunk(1), a)) << "a is in a chunk already";

  // mov r11, [rip + gate]; jmp qword [r11 + 8 * index]
  for (const TranslationUnit* u : {&a, &b}) {
    const auto* g = reinterpret_cast<const uint8_t*>(u->guarded_entry);
    ASSERT_EQ(std::vector<uint8_t>(g, g + 3), (std::vector<uint8_t>{0x4C, 0x8B, 0x1D}));
    ASSERT_EQ(std::vector<uint8_t>(g + 7, g + 10), (std::vector<uint8_t>{0x41, 0xFF, 0xA3}));
  }
  int32_t gate_displacement;
  std::memcpy(&gate_displacement, guard + 3, 4);
  const uint64_t gate = a.guarded_entry + 7 + gate_displacement;
  uint32_t b_offset;
  std::memcpy(&b_offset, reinterpret_cast<const uint8_t*>(b.guarded_entry) + 10, 4);
  EXPECT_EQ(b_offset, 8u);

  EXPECT_FALSE(cache.guard_chunk_open(chunk));
  EXPECT_EQ(exec_u64(exec_u64(gate)), a.guard_stub);
  EXPECT_EQ(exec_u64(exec_u64(gate) + b_offset), b.guard_stub);
  cache.set_guard_chunk(chunk, true);
  EXPECT_TRUE(cache.guard_chunk_open(chunk));
  EXPECT_EQ(exec_u64(exec_u64(gate)), a.host_start);
  EXPECT_EQ(exec_u64(exec_u64(gate) + b_offset), b.host_start);
}

}  // namespace
}  // namespace bt86
