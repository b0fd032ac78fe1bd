// The vCPU context block: the one memory layout that translated code, the
// cache stubs and the runtime agree on.
//
// Inside the translation cache r15 always points at this block. Guest
// registers live in host registers while translated code runs; they are
// written here only by the exit stubs (or by the host fault handler, which
// rebuilds them from the signal context), and read back by the entry stub.
// The block is page aligned and ends with a poll page: every unit entry
// loads from it, so protecting that page forces running code out at the next
// unit boundary without taxing hot paths with a flag test (flags are guest
// state inside the cache, so a test-and-branch would have to save them).
// The interrupt-window page works the same way for sti and popf: they load
// from it after setting the virtual IF, and the runtime protects it while an
// interrupt is pending and the guest has IF clear, so the instruction that
// opens the window leaves the cache to take the interrupt.
//
// While translated code runs, the host GS base is window_base (the current
// address-space window) and the host FS base is fs_window_base (window base
// plus the base of the guest segment that translated code reaches through
// the FS prefix); the entry stub installs both and every exit restores the
// VMM's own FS base (glibc's thread pointer) from vmm_fs_base.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace bt86 {

// Exit identifiers the common exit paths store; any other value names an
// ExitRecord of the translation cache.
inline constexpr uint32_t kExitIndirectMiss = 0xFFFFFFFFu;
inline constexpr uint32_t kExitHostFault = 0xFFFFFFFEu;

// Never equal to a zero-extended 16-bit selector.
inline constexpr uint32_t kNoReload = 0xFFFFFFFFu;

inline constexpr uint64_t kHostArithFlags = 0x8D5;  // CF PF AF ZF SF OF
inline constexpr uint64_t kHostDirectionFlag = 0x400;
// The RFLAGS bits that are guest state while translated code runs.
inline constexpr uint64_t kHostGuestFlags = kHostArithFlags | kHostDirectionFlag;

struct alignas(4096) VcpuContext {
  uint32_t gpr[8] = {};
  uint32_t eip = 0;         // On exit: the guest address execution continues at.
  uint32_t exit_id = 0;     // On exit: which exit was taken.
  uint64_t rflags = 0x202;  // Host RFLAGS image; only kHostGuestFlags are guest state.
  uint64_t host_rsp = 0;
  uint64_t entry_target = 0;
  uint64_t lookup_table = 0;  // IndirectLookupTable entries (see indirect_lookup.h).
  uint64_t window_base = 0;
  uint64_t negative_window_base = 0;
  uint64_t fs_window_base = 0;
  uint64_t vmm_fs_base = 0;
  // Guest EFLAGS bits that do not live in host RFLAGS, IF excluded (IOPL, AC,
  // ID, NT, ...): pushf merges them in, popf splits them out.
  uint32_t virtual_eflags = 0;
  uint8_t virtual_if = 0;  // Kept apart so cli/sti are one flag-neutral store.
  // Set while interrupt_window_page is protected (an interrupt waits for
  // IF): translated iretd, which has no interrupt shadow, takes the callout
  // then instead of going on at its target.
  uint8_t interrupt_window_armed = 0;
  uint8_t pad0[2] = {};
  uint32_t host_mxcsr = 0x1F80;
  uint16_t host_fcw = 0x37F;
  uint16_t pad1 = 0;
  // Guest segment selectors (ES CS SS DS FS GS), which translated push sreg
  // and mov r/m, sreg read: the runtime writes them before every entry, and
  // only callouts and the FS/GS switches below change them.
  uint16_t selectors[6] = {};
  uint32_t pad2 = 0;
  // Per segment register: the selector whose mov into it changes nothing
  // (the runtime has checked that a reload would give the very descriptor
  // the register holds), or kNoReload. Translated mov sreg, r/m skips its
  // callout on a match; written before every entry like selectors.
  uint32_t reload_selectors[6] = {kNoReload, kNoReload, kNoReload, kNoReload, kNoReload, kNoReload};
  // The segments translated code compensates for (TranslationMode::
  // compensated), per register (ES CS SS DS FS GS): the guest base and the
  // offsets reads and writes may touch, every byte in [low, high] (empty as
  // low 1, high 0: a null segment, a write through a read-only one). Written
  // before every entry; FS and GS also by the switches below.
  struct SegmentCheck {
    uint32_t base = 0;
    uint32_t read_low = 0;
    uint32_t read_high = 0xFFFFFFFFu;
    uint32_t write_low = 0;
    uint32_t write_high = 0xFFFFFFFFu;
    uint32_t pad = 0;
  };
  SegmentCheck segment_checks[6];
  // Linux switches FS between the user's selector and its per-CPU segment
  // on every kernel entry and exit. Per register, FS then GS: a selector
  // whose load the runtime has prepared (kNoReload if none), with the host
  // FS base, the lookup table and the FS and GS segment checks of the
  // translation mode that load leads to. Translated mov/pop FS or GS of that
  // selector installs them, marks segments_switched, and ends its unit
  // through the new lookup table; the runtime adopts the load at the next
  // exit. Written before every entry.
  struct SegmentSwitch {
    uint32_t selector = kNoReload;
    uint32_t pad = 0;
    uint64_t fs_window_base = 0;
    uint64_t lookup_table = 0;
    SegmentCheck fs_gs_checks[2];
  };
  SegmentSwitch segment_switches[2];
  uint8_t segments_switched = 0;
  uint8_t pad3[7] = {};
  // A selector for which verw sets ZF at the current CPL (the runtime has
  // read its descriptor and keeps the table traced), or kNoReload. Translated
  // verw skips its callout on a match; written before every entry.
  uint32_t verw_selector = kNoReload;
  // The guest's x87/SSE state is loaded lazily (see cache_stubs.h): fpu_live
  // is 1 while it is in the host registers rather than in fpu[]; fpu_gate is
  // the stub a unit jumps through before its first x87/MMX/SSE instruction
  // (CacheStubs::fpu_load while not live, fpu_ready once it is), and
  // fpu_return where that stub goes back to.
  uint32_t fpu_live = 0;
  uint64_t fpu_gate = 0;
  uint64_t fpu_return = 0;
  alignas(16) uint8_t fpu[512] = {};  // Guest FXSAVE image while not live.
  // A tiny private stack for pushfq/popfq in compensated sequences: the
  // host stack is never used inside the cache (RSP holds guest ESP).
  alignas(16) uint64_t scratch_stack[8] = {};
  alignas(4096) uint8_t poll_page[4096] = {};
  alignas(4096) uint8_t interrupt_window_page[4096] = {};
};

static_assert(std::is_standard_layout_v<VcpuContext>);
// The FS/GS switch exchanges the checks a qword at a time.
static_assert(sizeof(VcpuContext::SegmentCheck) % 8 == 0);

namespace ctx_offset {
inline constexpr int32_t gpr(int i) {
  return static_cast<int32_t>(offsetof(VcpuContext, gpr) + 4 * i);
}
inline constexpr int32_t kEip = offsetof(VcpuContext, eip);
inline constexpr int32_t kExitId = offsetof(VcpuContext, exit_id);
inline constexpr int32_t kRflags = offsetof(VcpuContext, rflags);
inline constexpr int32_t kHostRsp = offsetof(VcpuContext, host_rsp);
inline constexpr int32_t kEntryTarget = offsetof(VcpuContext, entry_target);
inline constexpr int32_t kLookupTable = offsetof(VcpuContext, lookup_table);
inline constexpr int32_t kWindowBase = offsetof(VcpuContext, window_base);
inline constexpr int32_t kNegativeWindowBase = offsetof(VcpuContext, negative_window_base);
inline constexpr int32_t kFsWindowBase = offsetof(VcpuContext, fs_window_base);
inline constexpr int32_t kVmmFsBase = offsetof(VcpuContext, vmm_fs_base);
inline constexpr int32_t kVirtualEflags = offsetof(VcpuContext, virtual_eflags);
inline constexpr int32_t kVirtualIf = offsetof(VcpuContext, virtual_if);
inline constexpr int32_t kInterruptWindowArmed = offsetof(VcpuContext, interrupt_window_armed);
inline constexpr int32_t kHostMxcsr = offsetof(VcpuContext, host_mxcsr);
inline constexpr int32_t kHostFcw = offsetof(VcpuContext, host_fcw);
inline constexpr int32_t selector(int segment) {
  return static_cast<int32_t>(offsetof(VcpuContext, selectors) + 2 * segment);
}
inline constexpr int32_t reload_selector(int segment) {
  return static_cast<int32_t>(offsetof(VcpuContext, reload_selectors) + 4 * segment);
}
// i: 0 for FS, 1 for GS; member: an offsetof into VcpuContext::SegmentSwitch.
inline constexpr int32_t segment_switch(int i, size_t member) {
  return static_cast<int32_t>(offsetof(VcpuContext, segment_switches) +
                              sizeof(VcpuContext::SegmentSwitch) * i + member);
}
inline constexpr int32_t switch_selector(int i) {
  return segment_switch(i, offsetof(VcpuContext::SegmentSwitch, selector));
}
inline constexpr int32_t switch_fs_window_base(int i) {
  return segment_switch(i, offsetof(VcpuContext::SegmentSwitch, fs_window_base));
}
inline constexpr int32_t switch_lookup_table(int i) {
  return segment_switch(i, offsetof(VcpuContext::SegmentSwitch, lookup_table));
}
inline constexpr int32_t switch_fs_gs_checks(int i) {
  return segment_switch(i, offsetof(VcpuContext::SegmentSwitch, fs_gs_checks));
}
// member: an offsetof into VcpuContext::SegmentCheck.
inline constexpr int32_t segment_check(int segment, size_t member) {
  return static_cast<int32_t>(offsetof(VcpuContext, segment_checks) +
                              sizeof(VcpuContext::SegmentCheck) * segment + member);
}
inline constexpr int32_t kFsGsChecks = segment_check(4, 0);
inline constexpr int32_t kSegmentsSwitched = offsetof(VcpuContext, segments_switched);
inline constexpr int32_t kVerwSelector = offsetof(VcpuContext, verw_selector);
inline constexpr int32_t kFpuLive = offsetof(VcpuContext, fpu_live);
inline constexpr int32_t kFpuGate = offsetof(VcpuContext, fpu_gate);
inline constexpr int32_t kFpuReturn = offsetof(VcpuContext, fpu_return);
inline constexpr int32_t kFpu = offsetof(VcpuContext, fpu);
inline constexpr int32_t kScratchStackTop =
    offsetof(VcpuContext, scratch_stack) + sizeof(VcpuContext::scratch_stack);
inline constexpr int32_t kPollPage = offsetof(VcpuContext, poll_page);
inline constexpr int32_t kInterruptWindowPage = offsetof(VcpuContext, interrupt_window_page);
// Where in that page popf's load reads: a fault there has no interrupt
// shadow to honour (sti's load reads the page's first word).
inline constexpr int32_t kInterruptWindowNoShadow = 64;
}  // namespace ctx_offset

}  // namespace bt86
