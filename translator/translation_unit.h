// Translation units (fragments): a run of guest instructions translated into
// one contiguous block of host code, with typed exits and the map from every
// host byte back to the guest instruction it implements.
//
// Invariants: a unit covers one contiguous guest byte range; it ends at the
// first unconditional control transfer, callout, fault-raising instruction or
// the size limit. A unit is a superblock: a conditional branch leaves through
// a side exit when taken and translation continues on its fall-through path,
// so a unit has one entry and several exits (a loop re-enters a unit at its
// entry, or, when it loops to its own start, just past the entry's poll
// load: TranslationUnit::loop_entry). Each exit is either direct (a
// patchable jmp rel32 that initially points at the exit's own stub and, once linked, at the target
// unit's entry) or one of the shared paths (indirect lookup, callout, exception). Every host
// instruction that can fault lies in the range of exactly one guest
// instruction, together with the recipe that rebuilds guest state there.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "translator/opcode_table.h"

namespace bt86 {

// How to turn host registers at a fault into guest registers. Ranges of a
// guest instruction without a recipe need none: nothing guest-visible changed.
struct Recovery {
  enum class Kind : uint8_t {
    kNone,
    kEspAdjust,                     // ESP += esp_adjust (a stack op half done).
    kSpAdjust,                      // The same on a 16-bit stack: SP alone, wrapping.
    kStringWindowBased,             // RSI/RDI hold window pointers: subtract the window base.
    kStringSourceWindowBased,       // Only RSI does (lods, outs).
    kStringDestinationWindowBased,  // Only RDI does (stos, scas, ins).
    kCompleted,                     // The instruction is done: EIP is the next one's.
    // A compensated access borrowed guest register `borrowed` to hold the
    // linear address; its guest value is in host R13.
    kBorrowedRegister,
  };
  Kind kind = Kind::kNone;
  int32_t esp_adjust = 0;
  uint8_t borrowed = 0;  // kBorrowedRegister: the guest register (0 = EAX .. 7 = EDI).
};

struct HostRange {
  uint32_t begin = 0;  // Offsets from the unit's host start.
  uint32_t end = 0;
  Recovery recovery;
};

struct InstructionMap {
  uint32_t guest_eip = 0;
  uint8_t guest_length = 0;
  TranslationKind kind = TranslationKind::kIdent;
  uint32_t host_begin = 0;
  uint32_t host_end = 0;
  std::vector<HostRange> recoveries;  // Sub-ranges with a non-trivial recipe.
};

enum class ExitKind : uint8_t {
  kDirect,     // Chainable jump to a known guest address.
  kCallout,    // Run a runtime function for the instruction at guest_target.
  kException,  // Raise an exception; guest_target is the reported EIP.
  kGuard,      // The unit's entry guard is closed; guest_target is its EIP.
};

struct ExitRecord {
  ExitKind kind = ExitKind::kDirect;
  uint32_t guest_target = 0;
  CalloutId callout = CalloutId::kNone;
  uint8_t vector = 0;
  std::optional<uint32_t> error_code;
  std::optional<uint32_t> fault_address;  // #PF raised while fetching code.
  uint64_t patch_site = 0;                // Exec address just past the jmp rel32 (direct exits).
  uint64_t stub = 0;                      // Exec address of the exit's own stub.
  uint64_t linked_to = 0;                 // Exec address it jumps to when linked, else 0.
  uint32_t unit = 0;                      // Owning unit's id.
};

// The code segment a unit was translated for. Guest EIPs everywhere (unit
// ranges, exits, lookups, recovery) are offsets into it; only fetching adds
// the base. The limit is compiled in: an instruction reaching past it and a
// branch to a target past it raise #GP(0) where the hardware does. code_16:
// D clear, the code is 16-bit code (GuestDecoder transcodes it).
struct CodeSegment {
  uint32_t base = 0;
  uint32_t limit = 0xFFFFFFFF;
  bool code_16 = false;
  friend bool operator==(const CodeSegment&, const CodeSegment&) = default;
  bool flat() const { return base == 0 && limit == 0xFFFFFFFF && !code_16; }
};

// What a unit's code depends on besides the guest bytes: translations are
// keyed by the guest EIP, the guest-physical frame it was fetched from (the
// same linear address may hold other code in another address space), the
// translation mode (TranslationMode::key(): CPL, IF sensitivity, segment
// plan, single-instruction units) and the code segment (the same EIP is
// other code under another CS base).
struct UnitKey {
  uint32_t eip = 0;
  uint32_t frame = 0;
  uint32_t mode = 0;
  CodeSegment code_segment;
  friend bool operator==(const UnitKey&, const UnitKey&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const UnitKey& k) {
    return H::combine(std::move(h), k.eip, k.frame, k.mode, k.code_segment.base,
                      k.code_segment.limit, k.code_segment.code_16);
  }
};

// A guest-physical byte range a unit was translated from.
struct CodeRange {
  uint32_t linear_page = 0;  // Linear page number.
  uint32_t physical = 0;     // First byte.
  uint32_t length = 0;
};

// A stretch of a unit that runs as a whole once entered: the unit entry,
// or the fall-through of a side exit. Its counter is bumped on arrival when
// counting is on; the *_before fields are the unit's counts of instructions
// preceding the segment, so a segment's own counts are the difference to
// the next segment's (or the unit's totals for the last one).
struct ExecutionSegment {
  uint64_t* counter = nullptr;
  uint32_t ident_before = 0;
  uint32_t compensated_before = 0;
  uint32_t callout_before = 0;
};

// TranslationUnit::guard_chunk of a unit in no chunk.
inline constexpr uint32_t kNoGuardChunk = 0xFFFFFFFF;
// Bytes reserved for an entry guard: a mov r11, [rip + disp32] and a
// jmp [r11 + disp32] once the unit is in a chunk.
inline constexpr uint32_t kGuardBytes = 14;

struct TranslationUnit {
  uint32_t id = 0;
  UnitKey key;
  uint32_t guest_start = 0;
  uint32_t guest_end = 0;   // Exclusive.
  uint64_t host_start = 0;  // Exec address of the entry.
  // Exec address just past the entry's poll load. The unit's own back edges
  // are linked here (TranslationCache::link): a loop inside one unit then
  // costs what the guest loop costs, and the event kicker breaks such a loop
  // from its signal handler instead (TranslationCache::break_loop_at).
  uint64_t loop_entry = 0;
  uint32_t host_size = 0;
  bool live = true;
  std::vector<InstructionMap> instructions;
  std::vector<uint32_t> exits;           // Exit ids it owns.
  std::vector<uint32_t> incoming_links;  // Exit ids of other units linked to it.
  uint32_t ident_count = 0;
  uint32_t compensated_count = 0;
  uint32_t callout_count = 0;
  uint64_t* execution_counter = nullptr;   // Bumped at entry when counting is on.
  std::vector<ExecutionSegment> segments;  // In order; the first is the entry's.
  // Where the code came from (one range, or two when it crosses a page) and
  // whether every page is global (paging off, or G=1 with CR4.PGE): global
  // units stay valid across address-space switches, others only in the
  // space they were fetched in. Set by the runtime after translation.
  std::vector<CodeRange> code;
  bool global = true;
  // The entry guard: links and lookup entries that skip the page walk enter
  // a non-global unit here, so an address-space switch closes guards
  // instead of unlinking every way in. Until the unit joins a guard chunk
  // (TranslationCache::join_guard_chunk) it jumps to guard_stub, a kGuard
  // exit; then it is `mov r11, [gate]; jmp [r11 + 8 * index]`, and the
  // chunk's gate selects the unit's entry (open) or guard_stub (closed) for
  // every unit of the chunk at once. Exec addresses.
  uint64_t guarded_entry = 0;
  uint64_t guard_stub = 0;
  uint32_t guard_chunk = kNoGuardChunk;

  const InstructionMap* instruction_at_host(uint64_t host_address) const;
  // Whether an exit linked to exec_address is linked to this unit: its
  // entry, its guarded entry or its loop entry.
  bool is_entry(uint64_t exec_address) const {
    return exec_address == host_start || exec_address == guarded_entry ||
           exec_address == loop_entry;
  }
};

}  // namespace bt86
