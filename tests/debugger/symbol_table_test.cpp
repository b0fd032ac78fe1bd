#include "monitor/debugger/symbol_table.h"

#include <gtest/gtest.h>

#include <cstring>

namespace bt86 {
namespace {

TEST(SymbolTableTest, SystemMapGivesNamesAndOffsets) {
  const SymbolTable t = SymbolTable::from_system_map(
      "c1000000 T _text\nc1000100 t startup_32\n00000000 A absolute\nc1000200 D some_data\n");
  EXPECT_EQ(t.address_of("startup_32"), 0xc1000100u);
  EXPECT_EQ(t.address_of("absolute"), std::nullopt);
  EXPECT_EQ(t.describe(0xc1000100), "startup_32");
  EXPECT_EQ(t.describe(0xc1000123), "startup_32+0x23");
  EXPECT_EQ(t.describe(0xbfffffff), "");
}

TEST(SymbolTableTest, MalformedSystemMapIsAnError) {
  EXPECT_THROW(SymbolTable::from_system_map("not a map\n"), SymbolError);
  EXPECT_THROW(SymbolTable::from_system_map(""), SymbolError);
}

TEST(SymbolTableTest, CompletionListsNamesWithThePrefix) {
  SymbolTable t;
  t.add("paging_enable", 0x100);
  t.add("paging_map_4k", 0x200);
  t.add("guest_main", 0x300);
  EXPECT_EQ(t.names_with_prefix("paging_"),
            (std::vector<std::string>{"paging_enable", "paging_map_4k"}));
}

// A minimal ELF32 with one symbol table: header, three section headers
// (null, .symtab, .strtab), two symbols (null, "entry" at 0x100010).
std::vector<uint8_t> tiny_elf() {
  std::vector<uint8_t> elf(512, 0);
  const auto put16 = [&](size_t at, uint16_t v) { std::memcpy(&elf[at], &v, 2); };
  const auto put32 = [&](size_t at, uint32_t v) { std::memcpy(&elf[at], &v, 4); };
  std::memcpy(elf.data(),
              "\x7f"
              "ELF\x01\x01\x01",
              7);
  put32(32, 200);  // e_shoff
  put16(46, 40);   // e_shentsize
  put16(48, 3);    // e_shnum
  // .symtab at 100: two 16-byte entries.
  put32(100 + 16 + 0, 1);         // st_name
  put32(100 + 16 + 4, 0x100010);  // st_value
  elf[100 + 16 + 12] = 2;         // STT_FUNC
  put16(100 + 16 + 14, 1);        // st_shndx
  // .strtab at 150.
  std::memcpy(&elf[150], "\0entry\0", 7);
  // Section 1: SHT_SYMTAB.
  put32(240 + 4, 2);
  put32(240 + 16, 100);
  put32(240 + 20, 32);
  put32(240 + 24, 2);  // sh_link: the string table.
  put32(240 + 36, 16);
  // Section 2: SHT_STRTAB.
  put32(280 + 4, 3);
  put32(280 + 16, 150);
  put32(280 + 20, 7);
  return elf;
}

TEST(SymbolTableTest, ElfSymbolTableIsRead) {
  const SymbolTable t = SymbolTable::from_elf(tiny_elf());
  EXPECT_EQ(t.address_of("entry"), 0x100010u);
  EXPECT_EQ(t.describe(0x100014), "entry+0x4");
}

TEST(SymbolTableTest, TruncatedElfIsAnErrorNotACrash) {
  std::vector<uint8_t> elf = tiny_elf();
  elf.resize(220);
  EXPECT_THROW(SymbolTable::from_elf(elf), SymbolError);
  std::vector<uint8_t> no_symtab = tiny_elf();
  no_symtab[240 + 4] = 1;  // SHT_PROGBITS
  EXPECT_THROW(SymbolTable::from_elf(no_symtab), SymbolError);
}

}  // namespace
}  // namespace bt86
