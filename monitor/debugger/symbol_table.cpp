#include "monitor/debugger/symbol_table.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

#include <fmt/format.h>

namespace bt86 {
namespace {

template <typename T>
T read_at(const std::vector<uint8_t>& bytes, uint64_t offset) {
  if (offset + sizeof(T) > bytes.size()) throw SymbolError("the ELF file is truncated");
  T value;
  std::memcpy(&value, bytes.data() + offset, sizeof value);
  return value;
}

}  // namespace

SymbolTable SymbolTable::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw SymbolError(fmt::format("cannot read the symbol file '{}'", path));
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                   std::istreambuf_iterator<char>());
  try {
    if (bytes.size() >= 4 && std::memcmp(bytes.data(),
                                         "\x7f"
                                         "ELF",
                                         4) == 0) {
      return from_elf(bytes);
    }
    return from_system_map(
        std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  } catch (const SymbolError& e) {
    throw SymbolError(fmt::format("{}: {}", path, e.what()));
  }
}

SymbolTable SymbolTable::from_elf(const std::vector<uint8_t>& bytes) {
  constexpr uint32_t kSymtab = 2;
  if (bytes.size() < 52 || bytes[4] != 1 || bytes[5] != 1) {
    throw SymbolError("not a little-endian ELF32 file");
  }
  const uint32_t shoff = read_at<uint32_t>(bytes, 32);
  const uint16_t shentsize = read_at<uint16_t>(bytes, 46);
  const uint16_t shnum = read_at<uint16_t>(bytes, 48);
  if (shentsize < 40) throw SymbolError("bad ELF section header size");
  SymbolTable table;
  bool found = false;
  for (uint32_t i = 0; i < shnum; ++i) {
    const uint64_t sh = uint64_t{shoff} + uint64_t{i} * shentsize;
    if (read_at<uint32_t>(bytes, sh + 4) != kSymtab) continue;
    found = true;
    const uint32_t offset = read_at<uint32_t>(bytes, sh + 16);
    const uint32_t size = read_at<uint32_t>(bytes, sh + 20);
    const uint32_t link = read_at<uint32_t>(bytes, sh + 24);
    const uint32_t entsize = read_at<uint32_t>(bytes, sh + 36);
    if (entsize < 16 || link >= shnum) throw SymbolError("bad ELF symbol table");
    const uint64_t strsh = uint64_t{shoff} + uint64_t{link} * shentsize;
    const uint32_t stroff = read_at<uint32_t>(bytes, strsh + 16);
    const uint32_t strsize = read_at<uint32_t>(bytes, strsh + 20);
    if (uint64_t{stroff} + strsize > bytes.size()) throw SymbolError("the ELF file is truncated");
    for (uint64_t at = offset; at + entsize <= uint64_t{offset} + size; at += entsize) {
      const uint32_t name = read_at<uint32_t>(bytes, at);
      const uint32_t value = read_at<uint32_t>(bytes, at + 4);
      const uint8_t type = read_at<uint8_t>(bytes, at + 12) & 0xF;
      const uint16_t section = read_at<uint16_t>(bytes, at + 14);
      // NOTYPE, OBJECT, FUNC in a real section (not undefined or absolute).
      if (type > 2 || section == 0 || section >= 0xFF00 || name >= strsize) continue;
      const char* text = reinterpret_cast<const char*>(bytes.data()) + stroff + name;
      const size_t length = strnlen(text, strsize - name);
      if (length == 0 || length == strsize - name) continue;
      table.add(std::string(text, length), value);
    }
  }
  if (!found) throw SymbolError("the ELF file has no symbol table");
  return table;
}

SymbolTable SymbolTable::from_system_map(std::string_view text) {
  SymbolTable table;
  std::istringstream in{std::string(text)};
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.empty()) continue;
    std::istringstream fields(line);
    std::string address, type, name;
    if (!(fields >> address >> type >> name) || address.size() > 16 ||
        address.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos ||
        type.size() != 1) {
      throw SymbolError(fmt::format("line {} is not 'ADDRESS TYPE NAME'", number));
    }
    // a/A: absolute values, not addresses; U: undefined.
    const char t = type[0];
    if (t == 'a' || t == 'A' || t == 'U' || t == 'w' || t == 'v') continue;
    table.add(name, static_cast<uint32_t>(std::stoull(address, nullptr, 16)));
  }
  if (table.size() == 0) throw SymbolError("no symbols found");
  return table;
}

void SymbolTable::add(std::string name, uint32_t address) {
  // Several names may share an address: describe() keeps the first seen.
  by_address_.emplace(address, name);
  by_name_.emplace(std::move(name), address);
}

std::optional<uint32_t> SymbolTable::address_of(std::string_view name) const {
  auto it = by_name_.find(std::string(name));
  if (it == by_name_.end()) return std::nullopt;
  return it->second;
}

std::string SymbolTable::describe(uint32_t address) const {
  auto it = by_address_.upper_bound(address);
  if (it == by_address_.begin()) return {};
  --it;
  const uint32_t offset = address - it->first;
  // Far from any symbol the name says nothing useful.
  if (offset >= 0x100000) return {};
  return offset == 0 ? it->second : fmt::format("{}+{:#x}", it->second, offset);
}

std::vector<std::string> SymbolTable::names_with_prefix(std::string_view prefix) const {
  std::vector<std::string> names;
  for (const auto& [name, address] : by_name_) {
    if (name.starts_with(prefix)) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace bt86
