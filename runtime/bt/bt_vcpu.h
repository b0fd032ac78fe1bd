// The BT backend's vCPU: runs a Machine's guest through the translator.
//
// Structure. The dispatcher (run_loop) owns the guest between units: it
// services the machine, injects interrupts, picks the address-space window,
// finds or translates the unit at EIP and enters the cache. Translated code
// leaves through typed exits (direct exits to link, indirect misses,
// callouts, exceptions) or through a host fault, which the signal handler
// (handle_host_signal) resolves in place when it can (hidden page faults:
// map and resume the same host instruction) and otherwise turns into
// precise guest state and a HostFault for the dispatcher.
//
// Memory. Guest RAM is the Machine's memfd. Paging off: the shadow MMU's
// identity space; paging on: its cached space for CR3, with the supervisor
// window at CPL 0 and the user window (U/S and R/W enforced by the host) at
// CPL 3. Host GS base = the window, host FS base = window + the base of the
// guest segment the translation mode routes through FS.
//
// Translations and address spaces. Code is guest-physical content, so a
// unit is found by (EIP, frame EIP is fetched from, mode) after a walk, and
// records the physical ranges it came from. The ways into a unit that skip
// that walk (direct links, indirect lookup entries; one lookup table per
// privilege) must stay right when the mapping changes:
// - a global unit (paging off, or G=1 with CR4.PGE, which the architecture
//   itself keeps across CR3 writes) is linked and looked up freely; invlpg
//   detaches the units of that page, CR0/CR4 paging-mode writes unlink
//   everything;
// - a link to a non-global unit in the source unit's own pages needs
//   nothing more (the source being valid implies the target is);
// - any other link or lookup entry into a non-global unit records that
//   unit in an index by each linear page it was translated from. The unit
//   is detached (every link and lookup entry into it dropped) when the
//   current space's mapping of one of those pages may change: on every CR3
//   write (all of them: a non-global TLB flush, even to the same value), on
//   invlpg of the page, and on a traced store to the current page directory
//   (the 4 MiB regions whose entries were written) or to a frame one of its
//   entries names (the pages the written entries map). Stores to other
//   spaces' tables detach nothing; their entries go at the switch. A table
//   no shadow mapping was derived from is not traced: as on hardware with
//   a TLB, a store to it counts once the guest invalidates (invlpg, CR3).
//   A unit still attached is therefore reached only while its pages map
//   the frames it was translated from.
// The cache therefore survives CR3 switches, and user code chains across
// its pages.
//
// Tracing. Frames that code was translated from are traced (kCode). A store
// to a traced frame (trace fault) leaves the cache with precise state; the
// dispatcher maps the page writable in the current window only, runs just
// that instruction (a single-instruction unit), restores the protection,
// compares the page with a snapshot taken before, and reports exactly the
// bytes that changed to the shadow MMU (page tables) and the translation
// cache (self-modifying code). The unit that stored is not resumed: the
// dispatcher continues at the next EIP through a fresh lookup.
//
// Adaptation. Trace faults are counted per guest EIP; past
// BtOptions::adapt_threshold the units holding the instruction are retired
// (which unlinks every way into them, so no entry needs patching) and it is
// retranslated as a kTracedStore callout: a plain mov, xchg, and, or or xor
// stores through GuestLinearMemory (which does the tracing work), other
// forms run as a
// single instruction with their page opened, without a host fault. Each
// adaptation is logged (adaptations(), the debugger's `adapt`) with the
// units it retired and the first full unit translated over it after. An
// adapted store that stops hitting traced pages (a buffer that was a page
// table once) is reverted to a plain store by the same retirement; its next
// adaptation needs twice the trace faults, so no instruction flips often.
//
// Memory outside RAM reads as zeros (the shadow MMU maps a shared zero page
// there) and stores to it are discarded; the Machine's MMIO bus is not
// dispatched yet (no bt86 device lives there).
//
// Time and interrupts. An EventKicker's timer signal protects the poll page
// at the next device deadline (or 10 ms) so running code comes out at a unit
// boundary;
// sti/popf fault on the interrupt-window page when an interrupt waits for
// IF. hlt blocks in Machine::wait_for_event.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "monitor/backend.h"
#include "monitor/machine.h"
#include "runtime/bt/bt_debug_hooks.h"
#include "runtime/bt/bt_stats.h"
#include "runtime/bt/event_kicker.h"
#include "runtime/bt/nonglobal_units.h"
#include "runtime/callouts.h"
#include "runtime/host_signals.h"
#include "runtime/segment_view.h"
#include "runtime/system/guest_event.h"
#include "runtime/system/system_context.h"
#include "shadow/guest_linear_memory.h"
#include "shadow/shadow_mmu.h"
#include "translator/translation_cache.h"
#include "translator/translator.h"
#include "translator/vcpu_context.h"

namespace bt86 {

struct BtOptions {
  size_t translation_cache_bytes = 64u << 20;
  bool count_executed = false;  // Per-unit execution counters (for --stats).
  // Adaptive retranslation: an instruction that takes this many trace
  // faults is retranslated to store through a callout (--no-adapt: never).
  bool adapt = true;
  uint32_t adapt_threshold = 8;
};

// One adaptive retranslation, for the debugger's `adapt`.
struct BtAdaptation {
  uint32_t eip = 0;
  std::vector<uint8_t> bytes;  // The instruction as it was adapted.
  uint32_t trace_faults = 0;
  TraceKinds kinds = 0;              // Of the frame its last trace fault hit.
  bool software_store = false;       // Stored through guest linear memory (else run singly).
  std::vector<uint32_t> old_units;   // Retired (ids until the next cache flush).
  std::optional<uint32_t> new_unit;  // The first unit translated over it since.
  // Set when the callout was reverted to a plain store: its last window of
  // callouts, and how many of them hit a traced page.
  std::optional<std::pair<uint32_t, uint32_t>> reverted;
};

struct UnassignedPage {
  int fd = -1;
  uint8_t* view = nullptr;
};

class BtVcpu final : public Vcpu,
                     public SystemContext,
                     public HostFaultHandler,
                     public CodeSource,
                     public GuestMemoryAccess {
 public:
  BtVcpu(Machine& machine, const BtOptions& options);
  ~BtVcpu() override;

  // Vcpu.
  VcpuExit run() override;
  CpuState state() const override;
  void set_state(const CpuState& state) override;
  void request_stop() override;

  // SystemContext.
  CpuState& cpu() override { return cpu_; }
  GuestLinearMemory& linear_memory() override { return linear_; }
  Machine& machine() override { return machine_; }
  void paging_changed() override;
  void invalidate_page(uint32_t linear) override;
  void descriptor_tables_changed() override;
  void segments_changed() override { view_dirty_ = true; }
  void traced_memory_written(uint32_t linear, uint32_t length, TraceKinds kinds) override;
  uint64_t read_tsc() override;
  void write_tsc(uint64_t value) override;

  // HostFaultHandler (signal context, synchronous faults of translated code).
  bool handle_host_signal(HostSignal& signal) override;
  // CodeSource: fetches for the translator through the current paging mode.
  size_t fetch(uint32_t eip, std::span<uint8_t> buffer, uint32_t* fault_error_code) override;
  // GuestMemoryAccess: for the shared callouts (pusha, popa, bound, ...).
  bool read(uint32_t address, void* data, uint32_t size, GuestException* fault) override;
  bool write(uint32_t address, const void* data, uint32_t size, GuestException* fault) override;

  std::string statistics() const override;
  const BtCounters& counters() const { return counters_; }
  const std::vector<BtAdaptation>& adaptations() const { return adaptations_; }

  // The debugger's hooks (nullptr: none); see runtime/bt/bt_debug_hooks.h.
  void set_debug_hooks(BtDebugHooks* hooks) { debug_hooks_ = hooks; }

 private:
  // Reads the cache, the shadow MMU and the current space for its views.
  friend class BtDebugTarget;

  // What the signal handler found, for the dispatcher.
  struct HostFault {
    enum class Kind { kNone, kPoll, kInterruptWindow, kException, kTraceWrite, kNotRam, kError };
    Kind kind = Kind::kNone;
    GuestException exception;
    uint32_t linear = 0;
    uint32_t physical = 0;
    bool write = false;
    bool interrupt_shadow = false;  // kInterruptWindow: sti's, not popf's.
    const char* error = nullptr;
  };
  // A page made writable for one emulated store.
  struct OpenedPage {
    uint32_t linear_page;
    uint32_t physical_page;
    std::vector<uint8_t> before;
    bool unassigned = false;  // Backed by the unassigned page: the store is discarded.
  };

  VcpuExit run_loop();
  void load_context();  // cpu_ -> context_: registers, EIP and EFLAGS.
  void save_context();  // context_ -> cpu_: registers, EIP and EFLAGS.
  // The x87/SSE image moves only when run() starts and ends: no callout
  // touches it (the guest's own fxsave and friends run in the cache), and
  // copying 512 bytes each way was a measurable part of every callout.
  void load_fpu();
  void save_fpu();
  // Before every entry: the selectors translated push sreg / mov r/m, sreg
  // read, and the in-cache segment-load, FS/GS-switch and verw offers.
  void sync_selectors();
  std::optional<VcpuExit> exit_for_stop();
  std::optional<VcpuExit> wait_while_halted();
  // Delivers an event with cpu_ current; returns an exit for a shutdown.
  std::optional<VcpuExit> deliver(const GuestEvent& event);
  std::optional<VcpuExit> finish_outcome(const SystemOutcome& outcome);

  void refresh_view();
  void switch_space();
  // Whether a non-global unit may be entered through its guard now.
  bool valid_in_current_space(const TranslationUnit& unit);
  // The frame a code page maps to in mode and whether it is global; the
  // frame is NonGlobalUnits::kNoFrame if a fetch there would fault or set
  // an accessed bit.
  NonGlobalUnits::PageNow fetchable_page(const PagingMode& mode, uint32_t linear_page, bool user);
  TranslationMode current_mode(bool single) const;
  CodeSegment code_segment() const;
  std::optional<uint32_t> code_frame(uint32_t linear, uint32_t* error_code);
  TranslationUnit* unit_for(uint32_t eip, bool single, std::optional<VcpuExit>* exit);
  void note_code(TranslationUnit& unit);
  bool may_link(const TranslationUnit& from, const TranslationUnit& to) const;
  static bool within_pages_of(const TranslationUnit& from, const TranslationUnit& to);

  std::optional<VcpuExit> handle_exit(uint32_t exit_id);
  std::optional<VcpuExit> handle_host_fault();
  std::optional<VcpuExit> handle_callout(uint32_t exit_id, const ExitRecord& exit);
  // A callout exit's instruction, decoded once: the exit belongs to a unit
  // whose bytes tracing keeps current, so they cannot change under it, and
  // fetching and decoding them at every call was a third of a callout.
  struct CalloutSite {
    DecodedInstruction instruction;
    uint64_t* count;  // Its entries in counters_ (stable std::map nodes).
    uint64_t* ns;
    bool view_neutral;  // See is_view_neutral(); read for system instructions only.
    // mov DS/ES/FS/GS, r/m and iretd: the register it loads (see reloads_).
    std::optional<SegReg> loads_segment;
  };
  CalloutSite* callout_site(uint32_t exit_id, const ExitRecord& exit);
  void publish_in_lookup(uint32_t eip, TranslationUnit& unit);
  static bool is_view_neutral(const DecodedInstruction& d);
  std::optional<VcpuExit> run_system_instruction(const DecodedInstruction& d);
  std::optional<VcpuExit> emulate_traced_store(uint32_t linear, uint32_t physical);
  std::optional<VcpuExit> run_traced_store(const DecodedInstruction& d);
  // mov, xchg, and, or, xor to memory through guest linear memory
  // (is_software_store).
  std::optional<VcpuExit> run_software_store(const DecodedInstruction& d,
                                             const ZydisDecodedOperand* op);
  std::optional<VcpuExit> store_to_traced_page(uint32_t linear, uint32_t physical);
  bool copy_string(const DecodedInstruction& d, std::optional<VcpuExit>* exit);
  void count_trace_fault(uint32_t eip, TraceKinds kinds);
  void note_adapted_translation(const TranslationUnit& unit);
  void close_pages(std::vector<OpenedPage>& pages);
  void invalidate_physical(uint32_t physical, uint32_t length);
  // Same-selector segment loads: see reloads_.
  void note_segment_load(SegReg reg);
  // In-cache FS/GS switches: see previous_loads_.
  void prepare_segment_switches(uint8_t cpl);
  void adopt_segment_switches();
  // In-cache verw: see verw_memo_.
  void note_verw(const DecodedInstruction& d);
  bool trace_descriptor(uint16_t selector);
  void forget_descriptor_tables();
  void set_interrupt_window(bool armed);
  bool decode_at(uint32_t eip, DecodedInstruction* d);
  // "0x00100000: mov eax, [ebx] ( 8b 03 )" for logs and error messages.
  std::string describe_instruction(uint32_t eip);

  Machine& machine_;
  BtOptions options_;
  UnassignedPage unassigned_;
  CpuState cpu_;
  VcpuContext* context_ = nullptr;
  ShadowMmu mmu_;
  GuestLinearMemory linear_;
  // Adaptation: trace faults per guest EIP, and the EIPs adapted.
  std::unordered_map<uint32_t, uint32_t> trace_fault_counts_;
  std::unordered_set<uint32_t> adapted_;
  struct AdaptedStoreRuns {
    uint32_t runs = 0;  // Callouts in the current window.
    uint32_t hits = 0;  // Of those, the ones that stored to a traced page.
    uint32_t reverts = 0;
  };
  std::unordered_map<uint32_t, AdaptedStoreRuns> adapted_runs_;
  bool traced_store_hit_ = false;  // Set by traced_memory_written().
  void note_adapted_store_run(uint32_t eip, bool hit);
  void retire_units_holding(uint32_t eip, std::vector<uint32_t>* ids);
  std::vector<BtAdaptation> adaptations_;
  size_t adaptations_awaiting_unit_ = 0;  // Entries without new_unit yet.
  TranslationCache cache_;
  Translator translator_;
  std::unique_ptr<EventKicker> kicker_;
  std::atomic<bool> stop_requested_{false};

  // Same-selector segment loads. Linux reloads DS and ES with the selectors
  // they hold on every kernel entry; translated mov sreg skips its callout
  // when sync_selectors() has found the reload a no-op: the register still
  // holds what the last full mov into it gave, at the same CPL, and no
  // descriptor table has changed since. descriptor_generation_ counts the
  // changes: GDTR/LDTR/TR loads, set_state, and stores to the frames the
  // recorded descriptors came from, which are traced (kDescriptorTable).
  struct SegmentReload {
    Segment loaded;
    uint8_t cpl = 0;
    uint64_t generation = 0;
    bool valid = false;
  };
  std::array<SegmentReload, kNumSegRegs> reloads_{};
  // Per register, the full load before the one in reloads_ if it had another
  // selector: the one translated code may switch FS or GS back to.
  std::array<SegmentReload, kNumSegRegs> previous_loads_{};
  struct FsGsKey {
    Segment fs, gs;
    uint8_t cpl = 0;
    friend bool operator==(const FsGsKey&, const FsGsKey&) = default;
  };
  RecentSegmentViews<FsGsKey> switch_views_;
  struct SegmentsKey {
    std::array<Segment, kNumSegRegs> segments{};
    uint8_t cpl = 0;
    friend bool operator==(const SegmentsKey&, const SegmentsKey&) = default;
  };
  RecentSegmentViews<SegmentsKey> views_;
  // The selector the last verw found writable, at that CPL and descriptor
  // generation: translated verw of it sets ZF without a callout.
  struct VerwMemo {
    uint16_t selector = 0;
    uint8_t cpl = 0;
    uint64_t generation = 0;
    bool valid = false;
  };
  VerwMemo verw_memo_;
  uint64_t descriptor_generation_ = 1;
  std::unordered_set<uint32_t> descriptor_frames_;

  // The current view (valid while !view_dirty_).
  bool view_dirty_ = true;
  ShadowAddressSpace* space_ = nullptr;
  std::optional<PagingMode> paging_;
  bool paging_known_ = false;
  WindowKind window_ = WindowKind::kSupervisor;
  TranslationMode mode_;
  uint32_t fetch_base_ = 0;  // CS base of the unit being translated.
  uint32_t fetch_page_ = 0;  // Linear page the unit being translated starts in.
  // The frame behind fetch_page_ if the dispatcher has just walked to it:
  // every instruction of the unit is fetched from there without a walk.
  std::optional<uint32_t> fetch_frame_;
  NonGlobalUnits nonglobal_{cache_};
  IndirectLookupTable* lookup_;                              // The cache's table for mode_.
  std::unordered_map<uint32_t, CalloutSite> callout_sites_;  // By exit id.
  uint64_t callout_sites_flush_count_ = 0;
  bool interrupt_window_armed_ = false;
  uint32_t logged_fs_base_ = 0;
  bool single_step_next_ = false;  // Run one instruction before injecting (sti shadow).
  // The instruction run last completed (see run_loop's single-step trap):
  // set where an exit reports one done, cleared before each entry.
  bool step_retired_ = false;
  // Device deadlines move only when the guest touches a port or a deadline
  // passes, and the kicker's timer turns the latter into a poll exit; after
  // any other exit the dispatcher skips the clock read and the device walk.
  bool timed_events_due_ = true;
  uint64_t port_accesses_seen_ = 0;

  HostFault fault_;
  // The last events delivered, logged when the guest shuts down. Kept raw
  // and formatted only then: formatting each delivery (with a decode of the
  // faulting instruction) cost more than the delivery itself.
  struct DeliveredEvent {
    GuestEvent event;
    uint16_t cs = 0, ss = 0, handler_cs = 0;
    uint32_t eip = 0, esp = 0, cr2 = 0, cr3 = 0, handler_eip = 0, handler_esp = 0;
  };
  std::array<DeliveredEvent, 24> recent_events_{};
  uint64_t events_recorded_ = 0;
  std::string describe_delivery(const DeliveredEvent& e);
  BtCounters counters_;
  BtDebugHooks* debug_hooks_ = nullptr;
};

}  // namespace bt86
