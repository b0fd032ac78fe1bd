// The translation cache's code index: units found by key, retired by the
// physical bytes they came from, detached without retiring.
#include <gtest/gtest.h>

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
  TranslationUnit& a = translator.translate({0x1000, 0x1, 0}, TranslationMode{}, source);
  a.code = {{0x1, 0x1000, 3}};
  cache.index_code(a);
  TranslationUnit& b = translator.translate({0x1010, 0x1, 0}, TranslationMode{}, source);
  b.code = {{0x1, 0x1010, 3}};
  cache.index_code(b);

  EXPECT_EQ(cache.find({0x1000, 0x1, 0}), &a);
  EXPECT_EQ(cache.find({0x1000, 0x2, 0}), nullptr) << "another frame is another unit";
  EXPECT_EQ(cache.units_from_physical(0x1003, 0x1010).size(), 0u) << "bytes between units";
  auto hit = cache.units_from_physical(0x1011, 0x1012);
  ASSERT_EQ(hit.size(), 1u);
  EXPECT_EQ(hit[0], &b);
  cache.retire(b);
  EXPECT_EQ(cache.find({0x1010, 0x1, 0}), nullptr);
  EXPECT_TRUE(cache.frame_has_code(0x1));
  cache.retire(a);
  EXPECT_FALSE(cache.frame_has_code(0x1));
}

TEST(CodeIndex, DetachKeepsTheUnitButDropsItsLookupEntry) {
  TranslationCache cache(1 << 20);
  Translator translator(cache, {});
  BytesSource source({0x90, 0xC3}, 0x2000);
  TranslationUnit& u = translator.translate({0x2000, 0x2, 0}, TranslationMode{}, source);
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

}  // namespace
}  // namespace bt86
