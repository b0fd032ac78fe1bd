// KVM ioctl numbers for the structures with flexible array members.
//
// An ioctl number encodes the size of its argument structure. The kernel
// headers declare kvm_msrs, kvm_cpuid2, kvm_signal_mask and kvm_xsave's tail
// through __DECLARE_FLEX_ARRAY, whose empty placeholder struct has size 1
// in C++ (0 in C), so in C++ the headers' own KVM_SET_MSRS, KVM_SET_CPUID2,
// ... encode the wrong size and the kernel rejects them with EINVAL. These
// are the numbers with the C sizes, checked against the values a C compiler
// produces.
#pragma once

#include <linux/kvm.h>

namespace bt86::kvm_ioctl {

inline constexpr unsigned long kGetMsrs = _IOC(_IOC_READ | _IOC_WRITE, KVMIO, 0x88, 8);
inline constexpr unsigned long kSetMsrs = _IOC(_IOC_WRITE, KVMIO, 0x89, 8);
inline constexpr unsigned long kSetCpuid2 = _IOC(_IOC_WRITE, KVMIO, 0x90, 8);
inline constexpr unsigned long kSetSignalMask = _IOC(_IOC_WRITE, KVMIO, 0x8b, 4);
inline constexpr unsigned long kGetXsave = _IOC(_IOC_READ, KVMIO, 0xa4, 4096);
inline constexpr unsigned long kSetXsave = _IOC(_IOC_WRITE, KVMIO, 0xa5, 4096);

static_assert(kGetMsrs == 0xc008ae88);
static_assert(kSetMsrs == 0x4008ae89);
static_assert(kSetCpuid2 == 0x4008ae90);
static_assert(kSetSignalMask == 0x4004ae8b);
static_assert(kGetXsave == 0x9000aea4);
static_assert(kSetXsave == 0x5000aea5);

}  // namespace bt86::kvm_ioctl
