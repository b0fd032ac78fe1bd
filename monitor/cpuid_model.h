// The one CPUID model of the bt86 virtual CPU, answered identically by the BT
// backend (cpuid callout) and the KVM backend (KVM_SET_CPUID2 from entries()).
//
// The model is an i686-class Intel CPU, family 6 model 14 stepping 8 (the
// 32-bit Core "Yonah" generation, the last Intel family without long mode),
// with exactly the features a non-PAE Debian 686 kernel uses and bt86
// implements. Every bit reported here is a promise the BT translator and
// runtime keep, so the list is short on purpose; the reasons are next to each
// bit in cpuid_model.cpp's leaf 1 table.
//
// Vendor "GenuineIntel": guest kernels choose quirks and code paths by vendor;
// an unknown vendor gets Linux's least-tested generic path, while Intel
// family 6 model 14 gets the well-trodden one (SYSENTER for system calls,
// constant TSC, cache sizes from leaf 2). The brand string says plainly that
// the CPU is virtual.
//
// Leaves: 0, 1, 2 (basic) and 0x80000000..0x80000004 (extended, brand). No
// leaf has subleaves. Any leaf above the basic or extended maximum answers
// like the highest basic leaf, as Intel CPUs do; this includes the
// 0x40000000 hypervisor range (bt86 does not advertise itself there).
//
//   CpuidModel cpuid;
//   CpuidResult r = cpuid.query(1, 0);      // r.edx & cpuid::edx1::kSse2
//   for (const CpuidEntry& e : cpuid.entries()) { /* KVM_SET_CPUID2 */ }
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace bt86 {

struct CpuidResult {
  uint32_t eax = 0;
  uint32_t ebx = 0;
  uint32_t ecx = 0;
  uint32_t edx = 0;
  friend bool operator==(const CpuidResult&, const CpuidResult&) = default;
};

struct CpuidEntry {
  uint32_t leaf = 0;
  uint32_t subleaf = 0;
  bool subleaf_significant = false;  // KVM_CPUID_FLAG_SIGNIFCANT_INDEX.
  CpuidResult result;
};

namespace cpuid {
inline constexpr uint32_t kMaxBasicLeaf = 2;
inline constexpr uint32_t kExtendedBase = 0x80000000;
inline constexpr uint32_t kMaxExtendedLeaf = 0x80000004;
inline constexpr char kVendor[] = "GenuineIntel";
inline constexpr char kBrand[] = "bt86 virtual CPU";
inline constexpr uint32_t kFamily = 6;
inline constexpr uint32_t kModel = 14;
inline constexpr uint32_t kStepping = 8;

// Leaf 1 EDX.
namespace edx1 {
inline constexpr uint32_t kFpu = 1u << 0;
inline constexpr uint32_t kVme = 1u << 1;
inline constexpr uint32_t kDe = 1u << 2;
inline constexpr uint32_t kPse = 1u << 3;
inline constexpr uint32_t kTsc = 1u << 4;
inline constexpr uint32_t kMsr = 1u << 5;
inline constexpr uint32_t kPae = 1u << 6;
inline constexpr uint32_t kMce = 1u << 7;
inline constexpr uint32_t kCx8 = 1u << 8;
inline constexpr uint32_t kApic = 1u << 9;
inline constexpr uint32_t kSep = 1u << 11;
inline constexpr uint32_t kMtrr = 1u << 12;
inline constexpr uint32_t kPge = 1u << 13;
inline constexpr uint32_t kMca = 1u << 14;
inline constexpr uint32_t kCmov = 1u << 15;
inline constexpr uint32_t kPat = 1u << 16;
inline constexpr uint32_t kPse36 = 1u << 17;
inline constexpr uint32_t kClflush = 1u << 19;
inline constexpr uint32_t kMmx = 1u << 23;
inline constexpr uint32_t kFxsr = 1u << 24;
inline constexpr uint32_t kSse = 1u << 25;
inline constexpr uint32_t kSse2 = 1u << 26;
inline constexpr uint32_t kHtt = 1u << 28;
}  // namespace edx1

// Leaf 1 ECX.
namespace ecx1 {
inline constexpr uint32_t kSse3 = 1u << 0;
inline constexpr uint32_t kX2apic = 1u << 21;
inline constexpr uint32_t kXsave = 1u << 26;
inline constexpr uint32_t kOsxsave = 1u << 27;
inline constexpr uint32_t kAvx = 1u << 28;
inline constexpr uint32_t kRdrand = 1u << 30;
inline constexpr uint32_t kHypervisor = 1u << 31;
}  // namespace ecx1

// Leaf 0x80000001 EDX.
namespace edx_ext1 {
inline constexpr uint32_t kSyscall = 1u << 11;
inline constexpr uint32_t kNx = 1u << 20;
inline constexpr uint32_t kLongMode = 1u << 29;
}  // namespace edx_ext1
}  // namespace cpuid

class CpuidModel {
 public:
  CpuidModel();

  // What CPUID returns for EAX=leaf, ECX=subleaf.
  CpuidResult query(uint32_t leaf, uint32_t subleaf) const;

  // Every leaf the model defines, in ascending order, for KVM_SET_CPUID2.
  const std::vector<CpuidEntry>& entries() const { return entries_; }

  std::string vendor() const;
  std::string brand() const;

 private:
  const CpuidEntry* find(uint32_t leaf) const;

  std::vector<CpuidEntry> entries_;
};

}  // namespace bt86
