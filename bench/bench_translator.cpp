// Translator benchmarks on freestanding compute kernels (bench/kernels/):
//
//  * BM_TranslateKernel: translation speed. Each iteration flushes the
//    translation cache (every translation is dropped) and runs the kernel on
//    an empty input, so the time is dominated by translating the kernel's
//    code; the counter is guest instructions translated per second (the
//    little execution of an empty run is included, so this is a lower bound).
//  * BM_Kernel: each iteration runs the kernel natively (NativeCompatRunner,
//    compatibility mode on the host CPU) and translated (FlatHarness), timing
//    each. Counters: native and translated seconds of the fastest run of
//    each (so a load spike on a shared machine inflates neither side),
//    their ratio (target: at most 1.15), and the fraction of executed guest
//    instructions that ran IDENT (target: at least 0.9), from a separate
//    pass with count_executed=true. Direct branches are compensated, so the IDENT
//    share is at most one minus the kernel's branch density (insertion
//    sort's inner loop: 7 of 9; crc32's: 7 of 8). Both sides must compute
//    the same result and leave the same input buffer, otherwise the
//    benchmark stops with an error.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "runtime/flat_harness.h"
#include "runtime/host_signals.h"
#include "runtime/native_compat_runner.h"

namespace bt86 {
namespace {

constexpr uint32_t kMemory = 16u << 20;
constexpr uint32_t kKernelBase = 0x100000;
constexpr uint32_t kParams = 0x200000;
constexpr uint32_t kInput = 0x400000;
constexpr uint32_t kStackTop = 0xF00000;

struct KernelSpec {
  const char* name;
  uint32_t input_bytes;
};
constexpr KernelSpec kKernels[] = {
    {"crc32", 4u << 20},
    {"insertion_sort", 64u << 10},
    {"sha256", 1u << 20},
    {"string_copy", 2u << 20},
};

std::vector<uint8_t> load_kernel(const std::string& name) {
  const std::string path = std::string(BT86_BENCH_KERNEL_DIR) + "/" + name + ".bin";
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<uint8_t> kernel_input(uint32_t bytes) {
  std::vector<uint8_t> v(bytes);
  std::mt19937 rng(42);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

// Lays out code, parameter block and input in a guest image.
void prepare(std::span<uint8_t> mem, const std::vector<uint8_t>& code,
             const std::vector<uint8_t>& input, uint32_t length) {
  std::memcpy(mem.data() + kKernelBase, code.data(), code.size());
  const uint32_t params[10] = {kInput, length};
  std::memcpy(mem.data() + kParams, params, sizeof params);
  std::memcpy(mem.data() + kInput, input.data(), input.size());
}

CpuState start_state() {
  CpuState s = FlatHarness::initial_state(kKernelBase, kStackTop);
  s.eflags |= eflags::kIf;
  return s;
}

void BM_TranslateKernel(benchmark::State& state, const char* name) {
  const std::vector<uint8_t> code = load_kernel(name);
  if (code.empty()) {
    state.SkipWithError("kernel binary missing (build bt86-bench-kernels)");
    return;
  }
  FlatHarness h({.memory_size = kMemory});
  prepare(h.memory(), code, {}, 0);
  const uint64_t before = h.stats().guest_instructions_translated;
  for (auto _ : state) {
    h.flush_translations();
    FlatRunResult r = h.run(start_state());
    if (r.stop != FlatRunResult::Stop::kHalt) {
      state.SkipWithError("kernel did not reach hlt");
      return;
    }
  }
  const double translated = static_cast<double>(h.stats().guest_instructions_translated - before);
  state.counters["guest_insns_translated"] =
      benchmark::Counter(translated, benchmark::Counter::kIsRate);
}

void BM_Kernel(benchmark::State& state, const KernelSpec& spec) {
  const std::vector<uint8_t> code = load_kernel(spec.name);
  if (code.empty()) {
    state.SkipWithError("kernel binary missing (build bt86-bench-kernels)");
    return;
  }
  const std::vector<uint8_t> input = kernel_input(spec.input_bytes);
  HostSignalThread signals;
  NativeCompatRunner native(signals, {.memory_size = kMemory, .timeout_ms = 60000});
  FlatHarness translated({.memory_size = kMemory});

  // Counting pass: which fraction of executed instructions ran IDENT.
  double ident_fraction = 0;
  {
    FlatHarness counting({.memory_size = kMemory, .count_executed = true});
    prepare(counting.memory(), code, input, spec.input_bytes);
    FlatRunResult r = counting.run(start_state());
    const ExecutionStats& st = counting.stats();
    if (r.stop != FlatRunResult::Stop::kHalt || st.executed_instructions == 0) {
      state.SkipWithError("counting run did not reach hlt");
      return;
    }
    ident_fraction = static_cast<double>(st.executed_ident_instructions) /
                     static_cast<double>(st.executed_instructions);
    state.counters["executed_insns"] = static_cast<double>(st.executed_instructions);
  }

  double native_seconds = std::numeric_limits<double>::infinity();
  double translated_seconds = native_seconds;
  for (auto _ : state) {
    prepare(native.memory(), code, input, spec.input_bytes);
    prepare(translated.memory(), code, input, spec.input_bytes);
    const auto t0 = std::chrono::steady_clock::now();
    FlatRunResult n = native.run(start_state());
    const auto t1 = std::chrono::steady_clock::now();
    FlatRunResult t = translated.run(start_state());
    const auto t2 = std::chrono::steady_clock::now();
    native_seconds = std::min(native_seconds, std::chrono::duration<double>(t1 - t0).count());
    translated_seconds =
        std::min(translated_seconds, std::chrono::duration<double>(t2 - t1).count());
    if (n.stop != FlatRunResult::Stop::kHalt || t.stop != FlatRunResult::Stop::kHalt) {
      state.SkipWithError("a run did not reach hlt");
      return;
    }
    const auto nm = native.memory(), tm = translated.memory();
    if (std::memcmp(nm.data() + kParams, tm.data() + kParams, 40) != 0 ||
        std::memcmp(nm.data() + kInput, tm.data() + kInput, spec.input_bytes) != 0 ||
        n.state.gpr != t.state.gpr) {
      state.SkipWithError("native and translated runs computed different results");
      return;
    }
  }
  state.counters["native_s"] = native_seconds;
  state.counters["translated_s"] = translated_seconds;
  state.counters["ratio"] = translated_seconds / native_seconds;
  state.counters["ident_fraction"] = ident_fraction;
}

int register_translator_benchmarks() {
  for (const KernelSpec& k : kKernels) {
    benchmark::RegisterBenchmark((std::string("BM_TranslateKernel/") + k.name).c_str(),
                                 BM_TranslateKernel, k.name)
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark((std::string("BM_Kernel/") + k.name).c_str(), BM_Kernel, k)
        ->Unit(benchmark::kMillisecond)
        ->Iterations(5);
  }
  return 0;
}

[[maybe_unused]] const int registered = register_translator_benchmarks();

}  // namespace
}  // namespace bt86
