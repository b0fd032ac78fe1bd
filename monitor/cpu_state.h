// The architectural state of one 32-bit x86 vCPU, shared by every backend.
//
// This is the single description of a guest CPU: loaders fill it, backends
// load it into their engine (BT: the translation-cache context; KVM: the
// vCPU registers) and save it back, the debugger and the tests read it.
// Nothing backend-specific lives here, which is what lets BT and KVM be
// compared on identical machines and makes snapshots possible later.
#pragma once

#include <array>
#include <cstdint>
#include <optional>

namespace bt86 {

enum class Gpr : uint8_t { kEax, kEcx, kEdx, kEbx, kEsp, kEbp, kEsi, kEdi };
enum class SegReg : uint8_t { kEs, kCs, kSs, kDs, kFs, kGs };
inline constexpr int kNumGprs = 8;
inline constexpr int kNumSegRegs = 6;

// A segment register's visible selector and its hidden descriptor cache, in
// the decoded form both Intel's and KVM's interfaces use.
struct Segment {
  uint16_t selector = 0;
  uint32_t base = 0;
  uint32_t limit = 0;  // Byte granular: already scaled when G=1.
  uint8_t type = 0;    // Descriptor type field (4 bits).
  bool s = false;      // S bit: 1 = code/data, 0 = system (TSS, LDT, gates).
  uint8_t dpl = 0;
  bool present = false;
  bool avl = false;
  bool db = false;  // D/B: 32-bit default operand/stack size.
  bool granularity = false;
  bool unusable = false;  // Loaded with a null selector.

  friend bool operator==(const Segment&, const Segment&) = default;
};

struct DescriptorTableRegister {
  uint32_t base = 0;
  uint16_t limit = 0;
  friend bool operator==(const DescriptorTableRegister&, const DescriptorTableRegister&) = default;
};

// The FXSAVE image: x87, MMX and SSE state in the layout the hardware and
// KVM (struct kvm_fpu / XSAVE legacy area) both understand.
struct alignas(16) FpuState {
  std::array<uint8_t, 512> fxsave{};
  friend bool operator==(const FpuState&, const FpuState&) = default;
  static FpuState reset_state();  // FCW=0x37F, MXCSR=0x1F80, tags empty.
};

// Model-specific registers a 32-bit i686 guest uses.
struct Msrs {
  uint32_t sysenter_cs = 0;
  uint32_t sysenter_esp = 0;
  uint32_t sysenter_eip = 0;
  uint64_t pat = 0x0007040600070406ULL;
  uint64_t misc_enable = 1;  // Fast-strings enabled.
  friend bool operator==(const Msrs&, const Msrs&) = default;
};

// An event the vCPU must deliver before executing its next instruction.
struct PendingException {
  uint8_t vector = 0;
  std::optional<uint32_t> error_code;
  friend bool operator==(const PendingException&, const PendingException&) = default;
};

struct PendingEvents {
  std::optional<PendingException> exception;
  // An external interrupt already acknowledged from the PIC but not yet
  // delivered (the vCPU stopped between INTA and delivery).
  std::optional<uint8_t> interrupt;
  bool nmi = false;
  // STI / MOV SS interrupt shadow: no interrupt before the next instruction.
  bool interrupt_shadow = false;
  bool halted = false;
  friend bool operator==(const PendingEvents&, const PendingEvents&) = default;
};

namespace eflags {
inline constexpr uint32_t kCf = 1u << 0;
inline constexpr uint32_t kFixed1 = 1u << 1;
inline constexpr uint32_t kPf = 1u << 2;
inline constexpr uint32_t kAf = 1u << 4;
inline constexpr uint32_t kZf = 1u << 6;
inline constexpr uint32_t kSf = 1u << 7;
inline constexpr uint32_t kTf = 1u << 8;
inline constexpr uint32_t kIf = 1u << 9;
inline constexpr uint32_t kDf = 1u << 10;
inline constexpr uint32_t kOf = 1u << 11;
inline constexpr uint32_t kIoplMask = 3u << 12;
inline constexpr uint32_t kNt = 1u << 14;
inline constexpr uint32_t kRf = 1u << 16;
inline constexpr uint32_t kVm = 1u << 17;
inline constexpr uint32_t kAc = 1u << 18;
inline constexpr uint32_t kId = 1u << 21;
inline constexpr uint32_t kArith = kCf | kPf | kAf | kZf | kSf | kOf;
}  // namespace eflags

namespace cr0 {
inline constexpr uint32_t kPe = 1u << 0;
inline constexpr uint32_t kMp = 1u << 1;
inline constexpr uint32_t kEm = 1u << 2;
inline constexpr uint32_t kTs = 1u << 3;
inline constexpr uint32_t kEt = 1u << 4;
inline constexpr uint32_t kNe = 1u << 5;
inline constexpr uint32_t kWp = 1u << 16;
inline constexpr uint32_t kAm = 1u << 18;
inline constexpr uint32_t kNw = 1u << 29;
inline constexpr uint32_t kCd = 1u << 30;
inline constexpr uint32_t kPg = 1u << 31;
}  // namespace cr0

namespace cr4 {
inline constexpr uint32_t kVme = 1u << 0;
inline constexpr uint32_t kPvi = 1u << 1;
inline constexpr uint32_t kTsd = 1u << 2;
inline constexpr uint32_t kDe = 1u << 3;
inline constexpr uint32_t kPse = 1u << 4;
inline constexpr uint32_t kPae = 1u << 5;
inline constexpr uint32_t kPge = 1u << 7;
inline constexpr uint32_t kOsfxsr = 1u << 9;
inline constexpr uint32_t kOsxmmexcpt = 1u << 10;
}  // namespace cr4

// Exception and interrupt vectors the architecture defines (SDM Vol. 3A 6.3.1).
namespace vector {
inline constexpr uint8_t kDe = 0;
inline constexpr uint8_t kDb = 1;
inline constexpr uint8_t kNmi = 2;
inline constexpr uint8_t kBp = 3;
inline constexpr uint8_t kOf = 4;
inline constexpr uint8_t kBr = 5;
inline constexpr uint8_t kUd = 6;
inline constexpr uint8_t kNm = 7;
inline constexpr uint8_t kDf = 8;
inline constexpr uint8_t kTs = 10;
inline constexpr uint8_t kNp = 11;
inline constexpr uint8_t kSs = 12;
inline constexpr uint8_t kGp = 13;
inline constexpr uint8_t kPf = 14;
inline constexpr uint8_t kMf = 16;
inline constexpr uint8_t kAc = 17;
inline constexpr uint8_t kXm = 19;
}  // namespace vector

// Indices of the model-specific registers bt86 knows.
namespace msr_index {
inline constexpr uint32_t kTsc = 0x10;
inline constexpr uint32_t kPlatformId = 0x17;
inline constexpr uint32_t kBiosSignId = 0x8B;
inline constexpr uint32_t kSysenterCs = 0x174;
inline constexpr uint32_t kSysenterEsp = 0x175;
inline constexpr uint32_t kSysenterEip = 0x176;
inline constexpr uint32_t kMiscEnable = 0x1A0;
inline constexpr uint32_t kPat = 0x277;
}  // namespace msr_index

struct CpuState {
  std::array<uint32_t, kNumGprs> gpr{};
  uint32_t eip = 0;
  uint32_t eflags = eflags::kFixed1;
  std::array<Segment, kNumSegRegs> seg{};
  Segment ldtr;
  Segment tr;
  DescriptorTableRegister gdtr;
  DescriptorTableRegister idtr;
  uint32_t cr0 = cr0::kEt;
  uint32_t cr2 = 0;
  uint32_t cr3 = 0;
  uint32_t cr4 = 0;
  std::array<uint32_t, 8> dr{0, 0, 0, 0, 0, 0, 0xFFFF0FF0, 0x400};
  uint64_t tsc = 0;
  Msrs msr;
  FpuState fpu = FpuState::reset_state();
  PendingEvents events;

  uint32_t& reg(Gpr r) { return gpr[static_cast<int>(r)]; }
  uint32_t reg(Gpr r) const { return gpr[static_cast<int>(r)]; }
  Segment& segment(SegReg s) { return seg[static_cast<int>(s)]; }
  const Segment& segment(SegReg s) const { return seg[static_cast<int>(s)]; }
  uint8_t cpl() const { return segment(SegReg::kCs).dpl; }

  friend bool operator==(const CpuState&, const CpuState&) = default;
};

// A flat 4 GiB segment of the given descriptor type at privilege level dpl,
// as loaders and tests build them.
Segment flat_segment(uint16_t selector, uint8_t type, uint8_t dpl);

}  // namespace bt86
