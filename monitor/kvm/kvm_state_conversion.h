// CpuState <-> the KVM vCPU register structures, as pure functions.
//
// The KVM backend's state()/set_state() are these conversions plus ioctls;
// keeping them free of file descriptors lets unit tests round-trip every
// field without /dev/kvm. Invariants:
//   - A 32-bit guest never has long mode: EFER is written as 0 and the L bit
//     of every segment as 0; upper halves of 64-bit fields are zero on the
//     way in and ignored on the way out.
//   - fill_*() write only the fields bt86 manages and leave the rest of the
//     structure as read from KVM (apic_base, cr8 and the interrupt bitmap in
//     kvm_sregs), so a read-modify-write never clobbers KVM's own state.
//   - The pending external interrupt travels in kvm_vcpu_events only; the
//     kvm_sregs interrupt bitmap is cleared so KVM_SET_SREGS cannot queue it a
//     second time.
//   - dr4/dr5 are not registers (they alias dr6/dr7 or fault), so they are
//     not part of the KVM image and read back as 0.
//   - CpuState::events.halted is not KVM state either: without an in-kernel
//     irqchip, hlt exits to user space, so the KVM vCPU object tracks it.
//
//   KvmVcpuImage image = to_kvm_image(state);   // then KVM_SET_* each part
//   CpuState back = to_cpu_state(image);        // after KVM_GET_* each part
#pragma once

#include <linux/kvm.h>

#include <array>
#include <cstddef>
#include <cstdint>

#include "monitor/cpu_state.h"

namespace bt86 {

// struct kvm_msrs with its flexible array sized for the MSRs bt86 manages,
// in the layout KVM_GET_MSRS/KVM_SET_MSRS expect. The kernel header's
// flexible array members are declared through __DECLARE_FLEX_ARRAY, whose
// empty struct has size 1 in C++ and shifts them off the C layout the kernel
// uses, so the layouts are restated here with the C offsets.
struct KvmMsrBlock {
  static constexpr uint32_t kCount = 6;
  uint32_t nmsrs = 0;
  uint32_t pad = 0;
  std::array<kvm_msr_entry, kCount> entries{};
};
static_assert(offsetof(KvmMsrBlock, entries) == 8 && sizeof(kvm_msr_entry) == 16);

// struct kvm_xsave without its KVM_CAP_XSAVE2 tail: the 4 KiB area that
// KVM_GET_XSAVE/KVM_SET_XSAVE transfer.
struct KvmXsaveArea {
  alignas(kvm_xsave) std::array<uint32_t, 1024> region{};
};
static_assert(sizeof(KvmXsaveArea) == 4096);

// Everything KVM holds of a bt86 vCPU, one structure per KVM_GET/SET ioctl.
struct KvmVcpuImage {
  kvm_regs regs{};
  kvm_sregs sregs{};
  kvm_debugregs debugregs{};
  kvm_vcpu_events events{};
  KvmXsaveArea xsave{};
  KvmMsrBlock msrs{};
};

kvm_segment to_kvm_segment(const Segment& s);
Segment to_segment(const kvm_segment& k);

void fill_kvm_regs(const CpuState& s, kvm_regs& out);
void read_kvm_regs(const kvm_regs& in, CpuState& s);

void fill_kvm_sregs(const CpuState& s, kvm_sregs& out);
void read_kvm_sregs(const kvm_sregs& in, CpuState& s);

void fill_kvm_debugregs(const CpuState& s, kvm_debugregs& out);
void read_kvm_debugregs(const kvm_debugregs& in, CpuState& s);

// Sets KVM_VCPUEVENT_VALID_SHADOW and _NMI_PENDING in flags so that KVM
// takes the interrupt shadow and the pending NMI from the structure.
void fill_kvm_events(const PendingEvents& e, kvm_vcpu_events& out);
void read_kvm_events(const kvm_vcpu_events& in, PendingEvents& e);

// The XSAVE area's first 512 bytes are the FXSAVE image; XSTATE_BV is set to
// x87|SSE so KVM loads both from it rather than from their init state.
void fill_kvm_xsave(const FpuState& f, KvmXsaveArea& out);
void read_kvm_xsave(const KvmXsaveArea& in, FpuState& f);

// kvm_fpu, for hosts without KVM_CAP_XSAVE. It carries every FXSAVE field a
// guest can observe except MXCSR_MASK (a CPU constant, read back as 0xFFFF)
// and the reserved tail, which read back as 0.
void fill_kvm_fpu(const FpuState& f, kvm_fpu& out);
void read_kvm_fpu(const kvm_fpu& in, FpuState& f);

// Indices in entry order; values only for fill (read needs just indices).
void fill_kvm_msrs(const CpuState& s, KvmMsrBlock& out);
// Throws std::runtime_error if the block does not hold exactly bt86's MSRs.
void read_kvm_msrs(const KvmMsrBlock& in, CpuState& s);
// The block with indices set and values zero, for KVM_GET_MSRS.
KvmMsrBlock kvm_msr_request();

KvmVcpuImage to_kvm_image(const CpuState& s);
CpuState to_cpu_state(const KvmVcpuImage& image);

}  // namespace bt86
