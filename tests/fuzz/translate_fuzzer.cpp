// Fuzz target over decode -> translate -> run of arbitrary guest bytes in the
// flat harness. Invariant under test: the host process never crashes or
// hangs whatever the bytes are; undecodable bytes become a guest #UD, other
// faults guest exceptions, endless loops a request_stop() from a watchdog.
//
// The bytes are placed at kCode inside a 64 KiB image whose remaining pages
// are filled with hlt, so most runs end quickly; ESP points into the image.
// Built as a libFuzzer target with -DBT86_FUZZ=ON (clang), and always as the
// replay driver translate_fuzz_replay.cpp.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#include "runtime/flat_harness.h"

namespace bt86 {
namespace {

constexpr uint32_t kMemory = 0x10000;
constexpr uint32_t kCode = 0x1000;
constexpr uint32_t kMaxCode = 0x4000;
constexpr auto kRunBound = std::chrono::milliseconds(200);

// Stops a run that exceeds kRunBound (a guest loop the bytes built).
class FuzzWatchdog {
 public:
  explicit FuzzWatchdog(FlatHarness& h) : harness_(h), thread_([this] { loop(); }) {}
  ~FuzzWatchdog() {
    {
      std::lock_guard lock(mutex_);
      quit_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void arm() {
    std::lock_guard lock(mutex_);
    armed_ = true;
    deadline_ = std::chrono::steady_clock::now() + kRunBound;
    cv_.notify_all();
  }
  void disarm() {
    std::lock_guard lock(mutex_);
    armed_ = false;
  }

 private:
  void loop() {
    std::unique_lock lock(mutex_);
    while (!quit_) {
      if (!armed_) {
        cv_.wait(lock);
      } else if (cv_.wait_until(lock, deadline_) == std::cv_status::timeout && armed_ &&
                 std::chrono::steady_clock::now() >= deadline_) {
        harness_.request_stop();
        armed_ = false;
      }
    }
  }
  FlatHarness& harness_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool armed_ = false;
  bool quit_ = false;
  std::chrono::steady_clock::time_point deadline_;
  std::thread thread_;
};

struct FuzzHarness {
  FlatHarness harness{{.memory_size = kMemory}};
  FuzzWatchdog watchdog{harness};
};

}  // namespace
}  // namespace bt86

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace bt86;
  // libFuzzer calls this entry point with no context argument, so the
  // harness (and its watchdog thread) lives for the whole process.
  static FuzzHarness* fuzz = new FuzzHarness;
  std::span<uint8_t> mem = fuzz->harness.memory();
  std::memset(mem.data(), 0xF4, mem.size());
  const size_t n = size < kMaxCode ? size : kMaxCode;
  std::memcpy(mem.data() + kCode, data, n);
  fuzz->harness.invalidate(0, kMemory);
  CpuState s = FlatHarness::initial_state(kCode, kMemory - 0x100);
  // Deterministic register values from the input so that address-dependent
  // paths are reachable too.
  for (int i = 0; i < kNumGprs; ++i) {
    if (i == static_cast<int>(Gpr::kEsp)) continue;
    uint32_t v = 0x8000u + static_cast<uint32_t>(i) * 0x400u;
    if (size >= 4 * static_cast<size_t>(i + 1) + kMaxCode) {
      std::memcpy(&v, data + kMaxCode + 4 * i, 4);
    }
    s.gpr[i] = v;
  }
  fuzz->watchdog.arm();
  FlatRunResult r = fuzz->harness.run(s);
  fuzz->watchdog.disarm();
  if (r.stop == FlatRunResult::Stop::kException && !r.exception.has_value()) std::abort();
  return 0;
}
