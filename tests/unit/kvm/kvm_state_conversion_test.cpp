// Round trips of every CpuState field through the KVM register structures,
// plus spot checks that fields land where KVM expects them (a round trip
// alone would pass if two fields were swapped both ways).
#include "monitor/kvm/kvm_state_conversion.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>

namespace bt86 {
namespace {

Segment random_segment(std::mt19937& rng) {
  Segment s;
  s.selector = static_cast<uint16_t>(rng());
  s.base = rng();
  s.limit = rng();
  s.type = rng() & 0xF;
  s.s = rng() & 1;
  s.dpl = rng() & 3;
  s.present = rng() & 1;
  s.avl = rng() & 1;
  s.db = rng() & 1;
  s.granularity = rng() & 1;
  s.unusable = rng() & 1;
  return s;
}

CpuState random_state(uint32_t seed) {
  std::mt19937 rng(seed);
  CpuState s;
  for (auto& r : s.gpr) r = rng();
  s.eip = rng();
  s.eflags = rng();
  for (auto& seg : s.seg) seg = random_segment(rng);
  s.ldtr = random_segment(rng);
  s.tr = random_segment(rng);
  s.gdtr = {static_cast<uint32_t>(rng()), static_cast<uint16_t>(rng())};
  s.idtr = {static_cast<uint32_t>(rng()), static_cast<uint16_t>(rng())};
  s.cr0 = rng();
  s.cr2 = rng();
  s.cr3 = rng();
  s.cr4 = rng();
  for (int i : {0, 1, 2, 3, 6, 7}) s.dr[i] = rng();
  s.dr[4] = s.dr[5] = 0;
  s.tsc = (uint64_t{rng()} << 32) | rng();
  s.msr.sysenter_cs = rng();
  s.msr.sysenter_esp = rng();
  s.msr.sysenter_eip = rng();
  s.msr.pat = (uint64_t{rng()} << 32) | rng();
  s.msr.misc_enable = (uint64_t{rng()} << 32) | rng();
  for (auto& b : s.fpu.fxsave) b = static_cast<uint8_t>(rng());
  if (rng() & 1) s.events.exception = PendingException{static_cast<uint8_t>(rng()), rng()};
  if (rng() & 1) s.events.exception = PendingException{static_cast<uint8_t>(rng()), std::nullopt};
  if (rng() & 1) s.events.interrupt = static_cast<uint8_t>(rng());
  s.events.nmi = rng() & 1;
  s.events.interrupt_shadow = rng() & 1;
  s.events.halted = false;  // Not KVM state: the vCPU object tracks it.
  return s;
}

TEST(KvmStateConversion, WholeStateRoundTripsForManyRandomStates) {
  for (uint32_t seed = 1; seed <= 200; ++seed) {
    const CpuState original = random_state(seed);
    EXPECT_EQ(to_cpu_state(to_kvm_image(original)), original) << "seed " << seed;
  }
}

TEST(KvmStateConversion, GeneralRegistersLandInTheirKvmNames) {
  CpuState s;
  for (int i = 0; i < kNumGprs; ++i) s.gpr[i] = 0x1000 + i;
  s.eip = 0xC0100000;
  s.eflags = 0x246;
  kvm_regs r{};
  fill_kvm_regs(s, r);
  EXPECT_EQ(r.rax, 0x1000u);
  EXPECT_EQ(r.rcx, 0x1001u);
  EXPECT_EQ(r.rdx, 0x1002u);
  EXPECT_EQ(r.rbx, 0x1003u);
  EXPECT_EQ(r.rsp, 0x1004u);
  EXPECT_EQ(r.rbp, 0x1005u);
  EXPECT_EQ(r.rsi, 0x1006u);
  EXPECT_EQ(r.rdi, 0x1007u);
  EXPECT_EQ(r.rip, 0xC0100000u);
  EXPECT_EQ(r.rflags, 0x246u);
  EXPECT_EQ(r.r8, 0u);
}

TEST(KvmStateConversion, UpperHalvesFromKvmAreIgnored) {
  kvm_regs r{};
  r.rax = 0xFFFFFFFF00000001ULL;
  r.rip = 0x1234567800001000ULL;
  CpuState s;
  read_kvm_regs(r, s);
  EXPECT_EQ(s.reg(Gpr::kEax), 1u);
  EXPECT_EQ(s.eip, 0x1000u);
}

TEST(KvmStateConversion, SegmentHiddenPartsAndUnusable) {
  Segment code = flat_segment(0x10, 0xB, 0);
  kvm_segment k = to_kvm_segment(code);
  EXPECT_EQ(k.selector, 0x10);
  EXPECT_EQ(k.base, 0u);
  EXPECT_EQ(k.limit, 0xFFFFFFFFu);
  EXPECT_EQ(k.type, 0xB);
  EXPECT_EQ(k.s, 1);
  EXPECT_EQ(k.present, 1);
  EXPECT_EQ(k.db, 1);
  EXPECT_EQ(k.g, 1);
  EXPECT_EQ(k.l, 0);
  EXPECT_EQ(k.unusable, 0);
  EXPECT_EQ(to_segment(k), code);

  Segment null_seg;
  null_seg.unusable = true;
  EXPECT_EQ(to_kvm_segment(null_seg).unusable, 1);
  EXPECT_EQ(to_segment(to_kvm_segment(null_seg)), null_seg);

  Segment user_tls;
  user_tls.selector = 0x33;
  user_tls.base = 0xB7F00000;
  user_tls.limit = 0xFFFFF;
  user_tls.type = 3;
  user_tls.s = true;
  user_tls.dpl = 3;
  user_tls.present = true;
  user_tls.avl = true;
  k = to_kvm_segment(user_tls);
  EXPECT_EQ(k.base, 0xB7F00000u);
  EXPECT_EQ(k.dpl, 3);
  EXPECT_EQ(k.avl, 1);
  EXPECT_EQ(k.g, 0);
  EXPECT_EQ(to_segment(k), user_tls);
}

TEST(KvmStateConversion, SregsKeepKvmOwnedFieldsAndForceLegacyMode) {
  CpuState s;
  s.cr0 = cr0::kPe | cr0::kPg | cr0::kEt;
  s.cr3 = 0x1000;
  s.cr4 = cr4::kPse;
  s.gdtr = {0xC1000000, 0xFF};
  kvm_sregs k{};
  k.apic_base = 0xFEE00900;
  k.cr8 = 5;
  k.efer = 0x500;  // LME|LMA left over from nowhere: must be cleared.
  k.interrupt_bitmap[0] = 1;
  fill_kvm_sregs(s, k);
  EXPECT_EQ(k.apic_base, 0xFEE00900u);
  EXPECT_EQ(k.cr8, 5u);
  EXPECT_EQ(k.efer, 0u);
  EXPECT_EQ(k.interrupt_bitmap[0], 0u);
  EXPECT_EQ(k.cr0, s.cr0);
  EXPECT_EQ(k.cr3, 0x1000u);
  EXPECT_EQ(k.cr4, cr4::kPse);
  EXPECT_EQ(k.gdt.base, 0xC1000000u);
  EXPECT_EQ(k.gdt.limit, 0xFF);
}

TEST(KvmStateConversion, DebugRegisters) {
  CpuState s;
  s.dr = {1, 2, 3, 4, 0, 0, 0xFFFF4FF0, 0x401};
  kvm_debugregs d{};
  fill_kvm_debugregs(s, d);
  EXPECT_EQ(d.db[3], 4u);
  EXPECT_EQ(d.dr6, 0xFFFF4FF0u);
  EXPECT_EQ(d.dr7, 0x401u);
  CpuState back;
  read_kvm_debugregs(d, back);
  EXPECT_EQ(back.dr, s.dr);
}

TEST(KvmStateConversion, PendingEventsUseKvmEncoding) {
  PendingEvents e;
  e.exception = PendingException{14, 0x2};
  e.interrupt = 0x30;
  e.nmi = true;
  e.interrupt_shadow = true;
  kvm_vcpu_events k{};
  fill_kvm_events(e, k);
  EXPECT_EQ(k.exception.injected, 1);
  EXPECT_EQ(k.exception.nr, 14);
  EXPECT_EQ(k.exception.has_error_code, 1);
  EXPECT_EQ(k.exception.error_code, 2u);
  EXPECT_EQ(k.interrupt.injected, 1);
  EXPECT_EQ(k.interrupt.nr, 0x30);
  EXPECT_EQ(k.interrupt.soft, 0);
  EXPECT_NE(k.interrupt.shadow, 0);
  EXPECT_EQ(k.nmi.pending, 1);
  EXPECT_TRUE(k.flags & KVM_VCPUEVENT_VALID_SHADOW);
  EXPECT_TRUE(k.flags & KVM_VCPUEVENT_VALID_NMI_PENDING);

  PendingEvents none;
  fill_kvm_events(none, k);
  EXPECT_EQ(k.exception.injected, 0);
  EXPECT_EQ(k.interrupt.injected, 0);
  EXPECT_EQ(k.interrupt.shadow, 0);
  EXPECT_EQ(k.nmi.pending, 0);
}

TEST(KvmStateConversion, EventsReadFromKvmVariants) {
  kvm_vcpu_events k{};
  k.exception.pending = 1;  // KVM_CAP_EXCEPTION_PAYLOAD: queued, not injected.
  k.exception.nr = 13;
  k.interrupt.injected = 1;
  k.interrupt.soft = 1;  // A software int n being re-executed is not a PIC interrupt.
  k.interrupt.nr = 0x80;
  k.interrupt.shadow = 0x01;  // MOV SS shadow.
  k.nmi.injected = 1;
  PendingEvents e;
  e.halted = true;
  read_kvm_events(k, e);
  ASSERT_TRUE(e.exception.has_value());
  EXPECT_EQ(e.exception->vector, 13);
  EXPECT_FALSE(e.exception->error_code.has_value());
  EXPECT_FALSE(e.interrupt.has_value());
  EXPECT_TRUE(e.interrupt_shadow);
  EXPECT_TRUE(e.nmi);
  EXPECT_TRUE(e.halted) << "halted is not KVM state and must be left alone";
}

TEST(KvmStateConversion, XsaveCarriesTheFxsaveImageAndLoadsX87AndSse) {
  FpuState f = FpuState::reset_state();
  f.fxsave[160] = 0xAB;  // XMM0 byte 0.
  KvmXsaveArea x{};
  fill_kvm_xsave(f, x);
  const auto* bytes = reinterpret_cast<const uint8_t*>(x.region.data());
  EXPECT_EQ(std::memcmp(bytes, f.fxsave.data(), 512), 0);
  uint64_t xstate_bv = 0;
  std::memcpy(&xstate_bv, bytes + 512, 8);
  EXPECT_EQ(xstate_bv, 3u);
  FpuState back;
  read_kvm_xsave(x, back);
  EXPECT_EQ(back, f);
}

TEST(KvmStateConversion, KvmFpuCarriesEveryGuestVisibleFxsaveField) {
  std::mt19937 rng(7);
  FpuState f;
  for (auto& b : f.fxsave) b = static_cast<uint8_t>(rng());
  kvm_fpu k{};
  fill_kvm_fpu(f, k);
  uint16_t fcw = 0;
  std::memcpy(&fcw, f.fxsave.data(), 2);
  EXPECT_EQ(k.fcw, fcw);
  uint32_t mxcsr = 0;
  std::memcpy(&mxcsr, f.fxsave.data() + 24, 4);
  EXPECT_EQ(k.mxcsr, mxcsr);
  EXPECT_EQ(k.xmm[0][0], f.fxsave[160]);
  EXPECT_EQ(k.fpr[7][9], f.fxsave[32 + 7 * 16 + 9]);

  FpuState back;
  read_kvm_fpu(k, back);
  // Bytes 0..27 (control, status, tag, opcode, pointers, MXCSR) and the
  // register file 32..415 round-trip; MXCSR_MASK is the CPU constant and the
  // reserved tail is zero.
  EXPECT_EQ(std::memcmp(back.fxsave.data(), f.fxsave.data(), 5), 0);
  EXPECT_EQ(std::memcmp(back.fxsave.data() + 6, f.fxsave.data() + 6, 22), 0);
  EXPECT_EQ(std::memcmp(back.fxsave.data() + 32, f.fxsave.data() + 32, 416 - 32), 0);
  uint32_t mask = 0;
  std::memcpy(&mask, back.fxsave.data() + 28, 4);
  EXPECT_EQ(mask, 0xFFFFu);
  for (size_t i = 416; i < 512; ++i) EXPECT_EQ(back.fxsave[i], 0) << i;
}

TEST(KvmStateConversion, MsrBlockHasTheLayoutKvmExpects) {
  CpuState s;
  s.msr.sysenter_cs = 0x60;
  s.msr.sysenter_eip = 0xC1000000;
  s.tsc = 123456789;
  KvmMsrBlock b;
  fill_kvm_msrs(s, b);
  EXPECT_EQ(b.nmsrs, KvmMsrBlock::kCount);
  const auto* entries =
      reinterpret_cast<const kvm_msr_entry*>(reinterpret_cast<const uint8_t*>(&b) + 8);
  EXPECT_EQ(entries[0].index, msr_index::kSysenterCs);
  EXPECT_EQ(entries[0].data, 0x60u);
  EXPECT_EQ(entries[2].index, msr_index::kSysenterEip);
  EXPECT_EQ(entries[2].data, 0xC1000000u);
  EXPECT_EQ(entries[3].index, msr_index::kTsc);
  EXPECT_EQ(entries[3].data, 123456789u);
}

TEST(KvmStateConversion, MsrReadRejectsAShortOrForeignBlock) {
  CpuState s;
  KvmMsrBlock b = kvm_msr_request();
  b.nmsrs = 3;  // KVM_GET_MSRS stopped early.
  EXPECT_THROW(read_kvm_msrs(b, s), std::runtime_error);
  b = kvm_msr_request();
  b.entries[1].index = 0xC0000080;  // EFER: not one of bt86's.
  EXPECT_THROW(read_kvm_msrs(b, s), std::runtime_error);
}

}  // namespace
}  // namespace bt86
