// Replay driver for the translate fuzz target, built with the normal
// compiler: feeds every file of a corpus directory and then N deterministic
// pseudo-random inputs (plain random bytes and random sequences of valid
// opcode bytes) to LLVMFuzzerTestOneInput. Success means the process
// survived; CTest runs it as fuzz.translate.replay.
//
//   bt86-fuzz-translate-replay tests/fuzz/corpus 2000
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR RANDOM_INPUTS\n", argv[0]);
    return 2;
  }
  const std::filesystem::path corpus = argv[1];
  char* end = nullptr;
  const unsigned long random_inputs = std::strtoul(argv[2], &end, 10);
  if (end == argv[2] || *end != '\0') {
    std::fprintf(stderr, "%s: RANDOM_INPUTS must be a number\n", argv[0]);
    return 2;
  }
  size_t files = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(corpus, ec)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                               std::istreambuf_iterator<char>());
    LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
    ++files;
  }
  if (ec) {
    std::fprintf(stderr, "%s: cannot read corpus %s: %s\n", argv[0], corpus.c_str(),
                 ec.message().c_str());
    return 2;
  }
  std::mt19937_64 rng(0xB786F022);
  // Bytes that start common one- and two-byte opcodes, so random inputs
  // decode into longer runs than uniform noise would.
  static constexpr uint8_t kOpcodeBytes[] = {0x01, 0x03, 0x0F, 0x29, 0x31, 0x39, 0x40, 0x48,
                                             0x50, 0x58, 0x66, 0x74, 0x75, 0x83, 0x85, 0x89,
                                             0x8B, 0x8D, 0xA4, 0xAB, 0xC1, 0xC3, 0xD1, 0xD9,
                                             0xDD, 0xE8, 0xEB, 0xF3, 0xF7, 0xFF, 0x65, 0x67};
  for (unsigned long i = 0; i < random_inputs; ++i) {
    std::vector<uint8_t> bytes(1 + rng() % 64);
    for (auto& b : bytes) {
      b = (i % 2 == 0) ? static_cast<uint8_t>(rng())
                       : kOpcodeBytes[rng() % sizeof kOpcodeBytes] ^
                             static_cast<uint8_t>((rng() % 4 == 0) ? rng() : 0);
    }
    LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
  }
  std::printf("fuzz replay: %zu corpus files, %lu random inputs, no crash\n", files, random_inputs);
  return 0;
}
