// The flat execution harness: runs guest code through the translator at
// CPL 0 with flat 4 GiB segments and paging off, guest memory [0, size) in
// one window over a memfd. It is what the translator's tests, the
// differential tester and the benchmarks drive; the BT backend grows from it.
//
// Guest linear == guest physical. An access outside [0, size), or to a page
// whose access was restricted with set_page_access(), is reported as a #PF
// with the guest address in fault_address and the error code the hardware
// would give (P, W/R bits; U/S clear). Exceptions are reported, never
// delivered: the run stops at the faulting instruction with precise state.
//
//   FlatHarness h({.memory_size = 1 << 20});
//   std::memcpy(h.memory().data() + 0x1000, code, n);
//   CpuState s = FlatHarness::initial_state(0x1000, /*esp=*/0x80000);
//   FlatRunResult r = h.run(s);   // until hlt, an exception or request_stop()
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>

#include "monitor/cpu_state.h"

namespace bt86 {

struct GuestException {
  uint8_t vector = 0;
  std::optional<uint32_t> error_code;
  std::optional<uint32_t> fault_address;  // #PF only: the CR2 value.
  friend bool operator==(const GuestException&, const GuestException&) = default;
};

struct FlatRunResult {
  enum class Stop {
    kHalt,           // Executed hlt; state.eip is the address of the hlt.
    kException,      // state is precise at the faulting instruction (trap-
                     // class exceptions such as #BP/INTO: after it, as on hardware).
    kStopRequested,  // request_stop() was called.
  };
  Stop stop = Stop::kHalt;
  CpuState state;
  std::optional<GuestException> exception;
};

// Counters a run accumulates; "executed" figures count guest instructions.
struct ExecutionStats {
  uint64_t units_translated = 0;
  uint64_t guest_instructions_translated = 0;
  uint64_t host_code_bytes = 0;
  uint64_t executed_instructions = 0;
  uint64_t executed_ident_instructions = 0;
  uint64_t executed_compensated_instructions = 0;
  uint64_t executed_callout_instructions = 0;
  uint64_t chained_exits = 0;
  uint64_t indirect_lookups_missed = 0;  // Lookups that had to leave the cache.
  uint64_t callouts = 0;
  uint64_t cache_flushes = 0;  // A full cache and flush_translations() alike.
};

enum class PageAccess { kNone, kRead, kReadWrite };

class FlatHarness {
 public:
  struct Options {
    uint32_t memory_size = 16u << 20;  // Multiple of 4 KiB.
    // Count executed instructions by kind (costs a counter update per unit).
    bool count_executed = false;
    // Translation cache size; when full it is flushed (stats().cache_flushes).
    uint32_t translation_cache_size = 32u << 20;
  };

  explicit FlatHarness(const Options& options);
  ~FlatHarness();
  FlatHarness(const FlatHarness&) = delete;
  FlatHarness& operator=(const FlatHarness&) = delete;

  // The VMM's own read/write view of guest memory. Writes to code that was
  // already translated must be followed by invalidate().
  std::span<uint8_t> memory();

  void set_page_access(uint32_t address, uint32_t length, PageAccess access);
  void invalidate(uint32_t address, uint32_t length);
  // Drops every translation at once (what a full cache does), cheaper than
  // invalidating the whole memory, whose cost grows with the units retired.
  void flush_translations();

  // Flat CPL 0 segments, EFLAGS=0x2, FPU in reset state.
  static CpuState initial_state(uint32_t eip, uint32_t esp);

  FlatRunResult run(const CpuState& start);
  // Async-signal-safe and thread-safe.
  void request_stop();

  const ExecutionStats& stats() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace bt86
