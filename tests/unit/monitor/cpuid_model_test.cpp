#include "monitor/cpuid_model.h"

#include <gtest/gtest.h>

namespace bt86 {
namespace {

TEST(CpuidModel, VendorBrandAndSignature) {
  const CpuidModel cpuid;
  EXPECT_EQ(cpuid.vendor(), "GenuineIntel");
  EXPECT_EQ(cpuid.brand(), "bt86 virtual CPU");
  EXPECT_EQ(cpuid.query(0, 0).eax, cpuid::kMaxBasicLeaf);
  const uint32_t signature = cpuid.query(1, 0).eax;
  EXPECT_EQ((signature >> 8) & 0xF, 6u);
  EXPECT_EQ((signature >> 4) & 0xF, 14u);
  EXPECT_EQ(cpuid.query(0x80000000, 0).eax, 0x80000004u);
}

TEST(CpuidModel, FeaturesA686KernelNeedsArePresent) {
  const CpuidResult leaf1 = CpuidModel().query(1, 0);
  using namespace cpuid::edx1;
  for (uint32_t bit :
       {kFpu, kDe, kPse, kTsc, kMsr, kCx8, kSep, kPge, kCmov, kClflush, kMmx, kFxsr, kSse, kSse2}) {
    EXPECT_NE(leaf1.edx & bit, 0u) << std::hex << bit;
  }
  EXPECT_EQ((leaf1.ebx >> 8) & 0xFF, 8u) << "CLFLUSH line size is 64 bytes";
}

TEST(CpuidModel, FeaturesBt86DoesNotImplementAreAbsent) {
  const CpuidModel cpuid;
  const CpuidResult leaf1 = cpuid.query(1, 0);
  using namespace cpuid;
  for (uint32_t bit : {edx1::kVme, edx1::kPae, edx1::kMce, edx1::kApic, edx1::kMtrr, edx1::kMca,
                       edx1::kPat, edx1::kPse36, edx1::kHtt}) {
    EXPECT_EQ(leaf1.edx & bit, 0u) << std::hex << bit;
  }
  for (uint32_t bit : {ecx1::kSse3, ecx1::kX2apic, ecx1::kXsave, ecx1::kOsxsave, ecx1::kAvx,
                       ecx1::kRdrand, ecx1::kHypervisor}) {
    EXPECT_EQ(leaf1.ecx & bit, 0u) << std::hex << bit;
  }
  const CpuidResult ext1 = cpuid.query(0x80000001, 0);
  EXPECT_EQ(ext1.edx & (edx_ext1::kLongMode | edx_ext1::kNx | edx_ext1::kSyscall), 0u);
}

TEST(CpuidModel, OutOfRangeLeavesAnswerLikeTheHighestBasicLeaf) {
  const CpuidModel cpuid;
  const CpuidResult highest = cpuid.query(cpuid::kMaxBasicLeaf, 0);
  EXPECT_EQ(cpuid.query(3, 0), highest);
  EXPECT_EQ(cpuid.query(0xD, 1), highest);
  EXPECT_EQ(cpuid.query(0x40000000, 0), highest);
  EXPECT_EQ(cpuid.query(0x80000005, 0), highest);
  EXPECT_EQ(cpuid.query(0xFFFFFFFF, 0), highest);
  EXPECT_NE(cpuid.query(1, 0), highest);
}

TEST(CpuidModel, EntriesExportEveryLeafAndMatchQuery) {
  const CpuidModel cpuid;
  ASSERT_EQ(cpuid.entries().size(), 3u + 5u);
  for (const CpuidEntry& e : cpuid.entries()) {
    EXPECT_EQ(cpuid.query(e.leaf, 0), e.result) << std::hex << e.leaf;
    EXPECT_FALSE(e.subleaf_significant);
  }
}

}  // namespace
}  // namespace bt86
