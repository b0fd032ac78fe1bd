#include "monitor/debugger/disassembler.h"

#include <capstone/capstone.h>

#include <stdexcept>

#include <fmt/format.h>

namespace bt86 {

Disassembler::Disassembler(Mode mode) {
  csh handle;
  const cs_mode cs_mode = mode == Mode::kGuest32   ? CS_MODE_32
                          : mode == Mode::kGuest16 ? CS_MODE_16
                                                   : CS_MODE_64;
  if (cs_open(CS_ARCH_X86, cs_mode, &handle) != CS_ERR_OK) {
    throw std::runtime_error("cannot open the Capstone disassembler");
  }
  handle_ = handle;
}

Disassembler::~Disassembler() {
  csh handle = handle_;
  cs_close(&handle);
}

std::vector<Disassembler::Line> Disassembler::disassemble(std::span<const uint8_t> code,
                                                          uint64_t address,
                                                          size_t max_count) const {
  std::vector<Line> lines;
  size_t offset = 0;
  while (lines.size() < max_count && offset < code.size()) {
    cs_insn* insn = nullptr;
    const size_t n =
        cs_disasm(handle_, code.data() + offset, code.size() - offset, address + offset, 1, &insn);
    Line line;
    line.address = address + offset;
    if (n == 0) {
      line.size = 1;
      line.bytes = fmt::format("{:02x}", code[offset]);
      line.text = "(bad)";
    } else {
      line.size = insn->size;
      for (uint16_t i = 0; i < insn->size; ++i) {
        line.bytes += fmt::format("{}{:02x}", i ? " " : "", insn->bytes[i]);
      }
      line.text = insn->op_str[0] ? fmt::format("{} {}", insn->mnemonic, insn->op_str)
                                  : std::string(insn->mnemonic);
      cs_free(insn, n);
    }
    offset += line.size;
    lines.push_back(std::move(line));
    if (n == 0) break;
  }
  return lines;
}

}  // namespace bt86
