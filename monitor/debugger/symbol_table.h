// Guest symbols for the debugger: names for addresses (func+0x1c) and
// addresses for names (break guest_main).
//
// Loaded from a Linux System.map ("c1000000 T _text" per line) or from the
// symbol table of an ELF32 file (a Multiboot kernel, vmlinux). Only code and
// data symbols with an address count; an address is described by the
// nearest symbol at or below it.
//
//   SymbolTable symbols = SymbolTable::load("paging.elf");  // throws SymbolError
//   symbols.describe(0x100123) == "guest_main+0x13"
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace bt86 {

class SymbolError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class SymbolTable {
 public:
  SymbolTable() = default;
  // ELF32 (by its magic) or System.map text. Throws SymbolError.
  static SymbolTable load(const std::string& path);
  static SymbolTable from_elf(const std::vector<uint8_t>& bytes);
  static SymbolTable from_system_map(std::string_view text);

  void add(std::string name, uint32_t address);
  std::optional<uint32_t> address_of(std::string_view name) const;
  // "name" or "name+0x1c"; empty if no symbol lies at or below address.
  std::string describe(uint32_t address) const;
  // Names starting with prefix, for completion.
  std::vector<std::string> names_with_prefix(std::string_view prefix) const;
  size_t size() const { return by_name_.size(); }

 private:
  std::map<uint32_t, std::string> by_address_;
  std::unordered_map<std::string, uint32_t> by_name_;
};

}  // namespace bt86
