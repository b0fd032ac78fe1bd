#include "monitor/cpuid_model.h"

#include <cstring>

namespace bt86 {

namespace {

using namespace cpuid;

// Leaf 1 EDX, one decision per feature.
constexpr uint32_t kLeaf1Edx =
    // x87 on chip: a 686 kernel without math emulation refuses to boot otherwise.
    edx1::kFpu |
    // CR4.DE only changes DR4/DR5 aliasing; cheap to honour and every 686 has it.
    edx1::kDe |
    // 4 MiB pages: Linux maps its kernel with them and the shadow MMU supports them.
    edx1::kPse |
    // RDTSC: Linux's clock source and delay calibration.
    edx1::kTsc |
    // RDMSR/WRMSR: needed for the SYSENTER MSRs.
    edx1::kMsr |
    // CMPXCHG8B: required by every kernel built for 586 and later.
    edx1::kCx8 |
    // SYSENTER/SYSEXIT: the fast system call path of 32-bit Linux.
    edx1::kSep |
    // Global pages (CR4.PGE): the kernel's mappings survive CR3 writes, which
    // saves the shadow MMU a rebuild on every context switch.
    edx1::kPge |
    // CMOVcc: a Debian 686 kernel is compiled with it.
    edx1::kCmov |
    // CLFLUSH: every SSE2 CPU has it and software assumes it; it is an ordinary
    // memory operand for the translator.
    edx1::kClflush |
    // MMX, FXSAVE/FXRSTOR, SSE, SSE2: the userland's baseline; guest vector
    // state lives in host registers while translated code runs.
    edx1::kMmx | edx1::kFxsr | edx1::kSse | edx1::kSse2;
// Deliberately absent from EDX:
//   VME      virtual-8086 mode extensions: bt86 does not run virtual-8086 mode.
//   PAE      the guest is 32-bit non-PAE; 3 GiB of RAM is the limit.
//   MCE/MCA  no machine-check architecture to emulate; Linux then skips it.
//   APIC     the machine has only the 8259 PIC; a set bit would make Linux
//            probe a local APIC at 0xFEE00000.
//   MTRR/PAT guest RAM is always host write-back memory: memory types have no
//            effect, and without them Linux uses its fixed fallback.
//   PSE-36   physical addresses above 4 GiB do not exist.
//   HTT      one logical processor per package.
//
// Leaf 1 ECX is zero: no SSE3 and later (not implemented by the translator),
// no x2APIC, no XSAVE/OSXSAVE/AVX (FXSAVE is the only state format), no
// RDRAND (KVM's instruction emulator on software hosts lacks it, and the BT
// backend would need a host entropy source per instruction), and no
// hypervisor bit: the guest runs as on bare metal.
constexpr uint32_t kLeaf1Ecx = 0;

constexpr uint32_t kSignature = (kFamily << 8) | (kModel << 4) | kStepping;
// EBX: CLFLUSH line size in 8-byte units (64 bytes), one logical processor,
// initial APIC ID 0.
constexpr uint32_t kLeaf1Ebx = (8u << 8) | (1u << 16);

// Leaf 2 descriptor bytes (AL = 1: one call returns everything):
// 0x2C L1D 32 KiB 8-way, 0x30 L1I 32 KiB 8-way, 0x7D L2 2 MiB 8-way, all with
// 64-byte lines; 0xB0 ITLB and 0xB3 DTLB 128 entries for 4 KiB pages. Linux
// sizes its cache-aligned structures from these.
constexpr CpuidResult kLeaf2 = {0x7D302C01, 0x0000B3B0, 0, 0};

uint32_t pack(const char* s) {
  uint32_t v = 0;
  std::memcpy(&v, s, 4);
  return v;
}

}  // namespace

CpuidModel::CpuidModel() {
  // Vendor string order is EBX, EDX, ECX.
  entries_.push_back(
      {0, 0, false, {kMaxBasicLeaf, pack(kVendor), pack(kVendor + 8), pack(kVendor + 4)}});
  entries_.push_back({1, 0, false, {kSignature, kLeaf1Ebx, kLeaf1Ecx, kLeaf1Edx}});
  entries_.push_back({2, 0, false, kLeaf2});
  entries_.push_back({kExtendedBase, 0, false, {kMaxExtendedLeaf, 0, 0, 0}});
  // No NX (it needs PAE), no long mode, no SYSCALL (only meaningful in 64-bit
  // mode on Intel).
  entries_.push_back({kExtendedBase + 1, 0, false, {}});
  char brand[48] = {};
  std::memcpy(brand, kBrand, sizeof kBrand - 1);
  for (uint32_t i = 0; i < 3; ++i) {
    const char* p = brand + 16 * i;
    entries_.push_back(
        {kExtendedBase + 2 + i, 0, false, {pack(p), pack(p + 4), pack(p + 8), pack(p + 12)}});
  }
}

const CpuidEntry* CpuidModel::find(uint32_t leaf) const {
  for (const CpuidEntry& e : entries_) {
    if (e.leaf == leaf) return &e;
  }
  return nullptr;
}

CpuidResult CpuidModel::query(uint32_t leaf, uint32_t /*subleaf*/) const {
  const bool basic = leaf <= kMaxBasicLeaf;
  const bool extended = leaf >= kExtendedBase && leaf <= kMaxExtendedLeaf;
  if (!basic && !extended) leaf = kMaxBasicLeaf;
  return find(leaf)->result;
}

std::string CpuidModel::vendor() const {
  const CpuidResult r = query(0, 0);
  char s[13] = {};
  std::memcpy(s, &r.ebx, 4);
  std::memcpy(s + 4, &r.edx, 4);
  std::memcpy(s + 8, &r.ecx, 4);
  return s;
}

std::string CpuidModel::brand() const {
  char s[49] = {};
  for (uint32_t i = 0; i < 3; ++i) {
    const CpuidResult r = query(kExtendedBase + 2 + i, 0);
    std::memcpy(s + 16 * i, &r.eax, 4);
    std::memcpy(s + 16 * i + 4, &r.ebx, 4);
    std::memcpy(s + 16 * i + 8, &r.ecx, 4);
    std::memcpy(s + 16 * i + 12, &r.edx, 4);
  }
  return s;
}

}  // namespace bt86
