// bt86-difftest: random instruction sequences run natively on the host CPU
// (NativeCompatRunner) and through the translator (FlatHarness); every
// architecturally defined result must agree. Sequence i of a run depends only
// on (--seed, i), so `--seed S --index I` replays one sequence. A mismatch is
// minimized (records dropped one at a time while it persists) and printed
// with bytes, disassembly, the initial state and both results.
//
//   bt86-difftest --count 20000 --seed 1
//   bt86-difftest --seed 1 --index 4711 --verbose
#include <capstone/capstone.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "monitor/exit_status.h"
#include "runtime/flat_harness.h"
#include "runtime/host_signals.h"
#include "runtime/native_compat_runner.h"
#include "tests/difftest/sequence.h"

namespace bt86::difftest {
namespace {

// Calls request_stop() on the harness if one run takes longer than a bound,
// so a translator that loops forever is reported instead of hanging.
class Watchdog {
 public:
  explicit Watchdog(FlatHarness& harness) : harness_(harness), thread_([this] { loop(); }) {}
  ~Watchdog() {
    {
      std::lock_guard lock(mutex_);
      quit_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void arm(std::chrono::milliseconds bound) {
    std::lock_guard lock(mutex_);
    deadline_ = std::chrono::steady_clock::now() + bound;
    cv_.notify_all();
  }
  void disarm() {
    std::lock_guard lock(mutex_);
    deadline_.reset();
  }

 private:
  void loop() {
    std::unique_lock lock(mutex_);
    while (!quit_) {
      if (!deadline_) {
        cv_.wait(lock);
      } else if (cv_.wait_until(lock, *deadline_) == std::cv_status::timeout && deadline_ &&
                 std::chrono::steady_clock::now() >= *deadline_) {
        harness_.request_stop();
        deadline_.reset();
      }
    }
  }
  FlatHarness& harness_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::optional<std::chrono::steady_clock::time_point> deadline_;
  bool quit_ = false;
  std::thread thread_;
};

struct Case {
  CpuState state;
  std::vector<uint8_t> memory;
};

struct Outcome {
  FlatRunResult result;
  std::vector<uint8_t> memory;
};

std::string stop_name(const FlatRunResult& r) {
  switch (r.stop) {
    case FlatRunResult::Stop::kHalt:
      return "hlt";
    case FlatRunResult::Stop::kStopRequested:
      return "timeout";
    case FlatRunResult::Stop::kException: {
      const GuestException& e = *r.exception;
      std::string s = fmt::format("exception vector {}", e.vector);
      if (e.error_code) s += fmt::format(" error {:#x}", *e.error_code);
      if (e.fault_address) s += fmt::format(" address {:#010x}", *e.fault_address);
      return s;
    }
  }
  return "?";
}

// Bytes of the FXSAVE image that are compared: FCW, FSW, abridged FTW,
// MXCSR, the 80 bits of each ST/MM register and XMM0-7. FOP/FIP/FDP depend
// on where the last x87 instruction ran (host vs. guest addresses), the rest
// is reserved or 64-bit-only.
std::array<bool, 512> fxsave_compare_mask() {
  std::array<bool, 512> m{};
  for (int i = 0; i < 5; ++i) m[i] = true;
  for (int i = 24; i < 28; ++i) m[i] = true;
  for (int r = 0; r < 8; ++r)
    for (int i = 0; i < 10; ++i) m[32 + 16 * r + i] = true;
  for (int i = 160; i < 288; ++i) m[i] = true;
  return m;
}

std::string fxsave_field(int offset) {
  if (offset < 2) return "FCW";
  if (offset < 4) return "FSW";
  if (offset == 4) return "FTW";
  if (offset < 28) return "MXCSR";
  if (offset < 160) return fmt::format("ST{}", (offset - 32) / 16);
  return fmt::format("XMM{}", (offset - 160) / 16);
}

uint32_t undefined_flags_at(const EncodedSequence& enc, const FlagAnalysis& flags, uint32_t eip) {
  const uint32_t off = eip - kCodeBase;
  size_t index = 0;
  for (size_t i = 0; i < enc.record_offsets.size(); ++i) {
    if (enc.record_offsets[i] <= off) index = i;
  }
  return flags.undefined_before[index];
}

std::vector<std::string> compare(const Outcome& native, const Outcome& translated,
                                 uint32_t undefined_flags) {
  std::vector<std::string> diffs;
  const FlatRunResult& a = native.result;
  const FlatRunResult& b = translated.result;
  if (a.stop != b.stop || a.exception != b.exception) {
    diffs.push_back(fmt::format("stop: native {}, translated {}", stop_name(a), stop_name(b)));
  }
  if (a.state.eip != b.state.eip) {
    diffs.push_back(fmt::format("eip: native {:#x}, translated {:#x}", a.state.eip, b.state.eip));
  }
  constexpr const char* kNames[] = {"eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"};
  for (int i = 0; i < kNumGprs; ++i) {
    if (a.state.gpr[i] != b.state.gpr[i]) {
      diffs.push_back(fmt::format("{}: native {:#010x}, translated {:#010x}", kNames[i],
                                  a.state.gpr[i], b.state.gpr[i]));
    }
  }
  const uint32_t mask = (eflags::kArith & ~undefined_flags) | eflags::kDf;
  if ((a.state.eflags & mask) != (b.state.eflags & mask)) {
    diffs.push_back(fmt::format("eflags (mask {:#x}): native {:#x}, translated {:#x}", mask,
                                a.state.eflags & mask, b.state.eflags & mask));
  }
  static const auto fx_mask = fxsave_compare_mask();
  for (int i = 0; i < 512; ++i) {
    if (fx_mask[i] && a.state.fpu.fxsave[i] != b.state.fpu.fxsave[i]) {
      diffs.push_back(fmt::format("fxsave {} (byte {}): native {:02x}, translated {:02x}",
                                  fxsave_field(i), i, a.state.fpu.fxsave[i],
                                  b.state.fpu.fxsave[i]));
      if (diffs.size() > 40) break;
    }
  }
  int memory_diffs = 0;
  for (size_t i = 0; i < native.memory.size(); ++i) {
    if (native.memory[i] != translated.memory[i] && memory_diffs++ < 16) {
      diffs.push_back(fmt::format("memory {:#06x}: native {:02x}, translated {:02x}", i,
                                  native.memory[i], translated.memory[i]));
    }
  }
  if (memory_diffs > 16) diffs.push_back(fmt::format("... {} memory bytes differ", memory_diffs));
  return diffs;
}

class DiffTester {
 public:
  explicit DiffTester(HostSignalThread& signals)
      : native_(signals, {.memory_size = kMemorySize, .timeout_ms = 2000}),
        harness_({.memory_size = kMemorySize}),
        watchdog_(harness_) {
    native_.set_page_access(kReadOnlyPage, 0x1000, PageAccess::kRead);
    native_.set_page_access(kNoAccessPage, 0x1000, PageAccess::kNone);
    harness_.set_page_access(kReadOnlyPage, 0x1000, PageAccess::kRead);
    harness_.set_page_access(kNoAccessPage, 0x1000, PageAccess::kNone);
    // Host page 0 cannot be mapped, so guest page 0 is never present natively.
    harness_.set_page_access(0, 0x1000, PageAccess::kNone);
  }

  // Runs the sequence on both sides; returns the differences (empty if none).
  std::vector<std::string> check(const Sequence& seq, const Case& c, Outcome& native,
                                 Outcome& translated, EncodedSequence& enc) {
    enc = encode(seq, kCodeBase);
    if (enc.bytes.size() > kCodeEnd - kCodeBase) return {"sequence too long for the code area"};
    std::vector<uint8_t> image = c.memory;
    std::memcpy(image.data() + kCodeBase, enc.bytes.data(), enc.bytes.size());

    std::memcpy(native_.memory().data(), image.data(), image.size());
    CpuState ns = c.state;
    ns.eip = kCodeBase;
    native.result = native_.run(ns);
    native.memory.assign(native_.memory().begin(), native_.memory().end());

    std::memcpy(harness_.memory().data(), image.data(), image.size());
    harness_.invalidate(0, kMemorySize);
    CpuState hs = FlatHarness::initial_state(kCodeBase, c.state.reg(Gpr::kEsp));
    hs.gpr = c.state.gpr;
    hs.eflags = c.state.eflags;
    hs.fpu = c.state.fpu;
    for (int i = 0; i < kNumSegRegs; ++i) {
      hs.seg[i].selector = i == static_cast<int>(SegReg::kCs) ? NativeCompatRunner::kCodeSelector
                                                              : NativeCompatRunner::kDataSelector;
    }
    watchdog_.arm(std::chrono::milliseconds(2000));
    translated.result = harness_.run(hs);
    watchdog_.disarm();
    translated.memory.assign(harness_.memory().begin(), harness_.memory().end());

    const FlagAnalysis flags = analyze_flags(seq);
    return compare(native, translated, undefined_flags_at(enc, flags, native.result.state.eip));
  }

 private:
  NativeCompatRunner native_;
  FlatHarness harness_;
  Watchdog watchdog_;
};

void print_state(const char* title, const CpuState& s) {
  fmt::print(
      "  {}: eax={:08x} ecx={:08x} edx={:08x} ebx={:08x} esp={:08x} ebp={:08x} "
      "esi={:08x} edi={:08x} eip={:08x} eflags={:08x}\n",
      title, s.gpr[0], s.gpr[1], s.gpr[2], s.gpr[3], s.gpr[4], s.gpr[5], s.gpr[6], s.gpr[7], s.eip,
      s.eflags);
  uint16_t fcw, fsw;
  uint32_t mxcsr;
  std::memcpy(&fcw, &s.fpu.fxsave[0], 2);
  std::memcpy(&fsw, &s.fpu.fxsave[2], 2);
  std::memcpy(&mxcsr, &s.fpu.fxsave[24], 4);
  fmt::print("    fcw={:04x} fsw={:04x} ftw={:02x} mxcsr={:08x}\n", fcw, fsw, s.fpu.fxsave[4],
             mxcsr);
}

void print_disassembly(const std::vector<uint8_t>& bytes) {
  csh handle;
  if (cs_open(CS_ARCH_X86, CS_MODE_32, &handle) != CS_ERR_OK) {
    fmt::print("  (capstone unavailable)\n");
    return;
  }
  cs_insn* insn = nullptr;
  const size_t n = cs_disasm(handle, bytes.data(), bytes.size(), kCodeBase, 0, &insn);
  for (size_t i = 0; i < n; ++i) {
    std::string hex;
    for (uint16_t k = 0; k < insn[i].size; ++k) hex += fmt::format("{:02x} ", insn[i].bytes[k]);
    fmt::print("  {:08x}  {:<30} {} {}\n", insn[i].address, hex, insn[i].mnemonic, insn[i].op_str);
  }
  if (n > 0) cs_free(insn, n);
  cs_close(&handle);
}

}  // namespace

int difftest_main(int argc, char** argv) {
  CLI::App app{"bt86-difftest: random instruction sequences, host CPU vs. translator"};
  uint64_t count = 1000;
  uint64_t seed = 1;
  bool verbose = false;
  std::string only_name;
  std::optional<uint64_t> index;
  int max_records = 16;
  app.add_option("--count", count, "Number of sequences");
  app.add_option("--seed", seed, "Seed; sequence i depends only on (seed, i)");
  app.add_flag("--verbose", verbose, "Print every sequence");
  app.add_option("--only", only_name, "Generate from one class only")
      ->check(CLI::IsMember({"alu", "shift", "muldiv", "bit", "cond", "atomic", "string", "stack",
                             "misc", "x87", "mmx", "sse", "fault"}));
  app.add_option("--index", index, "Run only sequence I of the seed");
  app.add_option("--max-records", max_records, "Records per sequence (at most)")
      ->check(CLI::Range(1, 64));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : static_cast<int>(ExitStatus::kUsage);
  }
  std::optional<FormClass> only;
  for (int c = 0; c < kNumFormClasses; ++c) {
    if (class_name(static_cast<FormClass>(c)) == only_name) only = static_cast<FormClass>(c);
  }

  try {
    HostSignalThread signals;
    DiffTester tester(signals);
    uint64_t sequences = 0;
    uint64_t mismatches = 0;
    const uint64_t first = index.value_or(0);
    const uint64_t last = index ? first + 1 : count;
    for (uint64_t i = first; i < last; ++i) {
      SequenceGenerator gen(seed * 0x9E3779B97F4A7C15ull + i, only);
      Case c;
      c.memory.assign(kMemorySize, 0);
      gen.randomize(c.state, c.memory);
      Sequence seq = gen.generate(1 + static_cast<int>((seed + i * 7) % max_records));
      Outcome native, translated;
      EncodedSequence enc;
      std::vector<std::string> diffs = tester.check(seq, c, native, translated, enc);
      ++sequences;
      if (verbose) {
        fmt::print("sequence {} ({} records): {} (native {}, translated {})\n", i,
                   seq.records.size(), diffs.empty() ? "ok" : "MISMATCH", stop_name(native.result),
                   stop_name(translated.result));
        print_disassembly(enc.bytes);
      }
      if (diffs.empty()) continue;
      ++mismatches;
      // Minimize: drop records one at a time while the mismatch persists.
      for (size_t k = 0; k < seq.records.size();) {
        Sequence candidate = seq;
        candidate.records.erase(candidate.records.begin() + static_cast<long>(k));
        Outcome cn, ct;
        EncodedSequence ce;
        if (analyze_flags(candidate).valid) {
          std::vector<std::string> d = tester.check(candidate, c, cn, ct, ce);
          if (!d.empty()) {
            seq = std::move(candidate);
            diffs = std::move(d);
            continue;
          }
        }
        ++k;
      }
      diffs = tester.check(seq, c, native, translated, enc);
      fmt::print("MISMATCH in sequence {} (rerun: bt86-difftest --seed {} --index {}{}{})\n", i,
                 seed, i, only ? " --only " : "", only ? only_name : "");
      std::string hex;
      for (uint8_t b : enc.bytes) hex += fmt::format("{:02x}", b);
      fmt::print("  bytes: {}\n", hex);
      print_disassembly(enc.bytes);
      CpuState initial = c.state;
      initial.eip = kCodeBase;
      print_state("initial", initial);
      print_state("native", native.result.state);
      fmt::print("    stop: {}\n", stop_name(native.result));
      print_state("translated", translated.result.state);
      fmt::print("    stop: {}\n", stop_name(translated.result));
      for (const std::string& d : diffs) fmt::print("  diff: {}\n", d);
    }
    fmt::print("difftest: {} sequences, {} mismatches\n", sequences, mismatches);
    return mismatches == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "bt86-difftest: {}\n", e.what());
    return static_cast<int>(ExitStatus::kHostError);
  }
}

}  // namespace bt86::difftest

int main(int argc, char** argv) {
  return bt86::difftest::difftest_main(argc, argv);
}
