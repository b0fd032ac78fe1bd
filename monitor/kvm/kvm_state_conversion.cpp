#include "monitor/kvm/kvm_state_conversion.h"

#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

namespace bt86 {

namespace {

constexpr uint8_t kShadowMovSs = 0x01;  // KVM_X86_SHADOW_INT_MOV_SS
constexpr uint8_t kShadowSti = 0x02;    // KVM_X86_SHADOW_INT_STI
constexpr uint64_t kXstateFpSse = 0x3;  // XSTATE_BV bits 0 (x87) and 1 (SSE).
constexpr size_t kXstateBvOffset = 512;

constexpr std::array<uint32_t, KvmMsrBlock::kCount> kMsrIndices = {
    msr_index::kSysenterCs, msr_index::kSysenterEsp, msr_index::kSysenterEip,
    msr_index::kTsc,        msr_index::kPat,         msr_index::kMiscEnable,
};

uint64_t msr_value(const CpuState& s, uint32_t index) {
  switch (index) {
    case msr_index::kSysenterCs:
      return s.msr.sysenter_cs;
    case msr_index::kSysenterEsp:
      return s.msr.sysenter_esp;
    case msr_index::kSysenterEip:
      return s.msr.sysenter_eip;
    case msr_index::kTsc:
      return s.tsc;
    case msr_index::kPat:
      return s.msr.pat;
    case msr_index::kMiscEnable:
      return s.msr.misc_enable;
  }
  throw std::logic_error(fmt::format("MSR {:#x} is not managed by bt86", index));
}

void set_msr_value(CpuState& s, uint32_t index, uint64_t value) {
  switch (index) {
    case msr_index::kSysenterCs:
      s.msr.sysenter_cs = static_cast<uint32_t>(value);
      return;
    case msr_index::kSysenterEsp:
      s.msr.sysenter_esp = static_cast<uint32_t>(value);
      return;
    case msr_index::kSysenterEip:
      s.msr.sysenter_eip = static_cast<uint32_t>(value);
      return;
    case msr_index::kTsc:
      s.tsc = value;
      return;
    case msr_index::kPat:
      s.msr.pat = value;
      return;
    case msr_index::kMiscEnable:
      s.msr.misc_enable = value;
      return;
  }
  throw std::runtime_error(
      fmt::format("KVM returned MSR {:#x}, which bt86 did not ask for", index));
}

}  // namespace

kvm_segment to_kvm_segment(const Segment& s) {
  kvm_segment k{};
  k.base = s.base;
  k.limit = s.limit;
  k.selector = s.selector;
  k.type = s.type;
  k.present = s.present;
  k.dpl = s.dpl;
  k.db = s.db;
  k.s = s.s;
  k.l = 0;
  k.g = s.granularity;
  k.avl = s.avl;
  k.unusable = s.unusable;
  return k;
}

Segment to_segment(const kvm_segment& k) {
  Segment s;
  s.selector = k.selector;
  s.base = static_cast<uint32_t>(k.base);
  s.limit = k.limit;
  s.type = k.type & 0xF;
  s.s = k.s != 0;
  s.dpl = k.dpl & 3;
  s.present = k.present != 0;
  s.avl = k.avl != 0;
  s.db = k.db != 0;
  s.granularity = k.g != 0;
  s.unusable = k.unusable != 0;
  return s;
}

void fill_kvm_regs(const CpuState& s, kvm_regs& out) {
  out = {};
  out.rax = s.reg(Gpr::kEax);
  out.rcx = s.reg(Gpr::kEcx);
  out.rdx = s.reg(Gpr::kEdx);
  out.rbx = s.reg(Gpr::kEbx);
  out.rsp = s.reg(Gpr::kEsp);
  out.rbp = s.reg(Gpr::kEbp);
  out.rsi = s.reg(Gpr::kEsi);
  out.rdi = s.reg(Gpr::kEdi);
  out.rip = s.eip;
  out.rflags = s.eflags;
}

void read_kvm_regs(const kvm_regs& in, CpuState& s) {
  s.reg(Gpr::kEax) = static_cast<uint32_t>(in.rax);
  s.reg(Gpr::kEcx) = static_cast<uint32_t>(in.rcx);
  s.reg(Gpr::kEdx) = static_cast<uint32_t>(in.rdx);
  s.reg(Gpr::kEbx) = static_cast<uint32_t>(in.rbx);
  s.reg(Gpr::kEsp) = static_cast<uint32_t>(in.rsp);
  s.reg(Gpr::kEbp) = static_cast<uint32_t>(in.rbp);
  s.reg(Gpr::kEsi) = static_cast<uint32_t>(in.rsi);
  s.reg(Gpr::kEdi) = static_cast<uint32_t>(in.rdi);
  s.eip = static_cast<uint32_t>(in.rip);
  s.eflags = static_cast<uint32_t>(in.rflags);
}

void fill_kvm_sregs(const CpuState& s, kvm_sregs& out) {
  out.es = to_kvm_segment(s.segment(SegReg::kEs));
  out.cs = to_kvm_segment(s.segment(SegReg::kCs));
  out.ss = to_kvm_segment(s.segment(SegReg::kSs));
  out.ds = to_kvm_segment(s.segment(SegReg::kDs));
  out.fs = to_kvm_segment(s.segment(SegReg::kFs));
  out.gs = to_kvm_segment(s.segment(SegReg::kGs));
  out.ldt = to_kvm_segment(s.ldtr);
  out.tr = to_kvm_segment(s.tr);
  out.gdt = {};
  out.gdt.base = s.gdtr.base;
  out.gdt.limit = s.gdtr.limit;
  out.idt = {};
  out.idt.base = s.idtr.base;
  out.idt.limit = s.idtr.limit;
  out.cr0 = s.cr0;
  out.cr2 = s.cr2;
  out.cr3 = s.cr3;
  out.cr4 = s.cr4;
  out.efer = 0;
  std::memset(out.interrupt_bitmap, 0, sizeof out.interrupt_bitmap);
}

void read_kvm_sregs(const kvm_sregs& in, CpuState& s) {
  s.segment(SegReg::kEs) = to_segment(in.es);
  s.segment(SegReg::kCs) = to_segment(in.cs);
  s.segment(SegReg::kSs) = to_segment(in.ss);
  s.segment(SegReg::kDs) = to_segment(in.ds);
  s.segment(SegReg::kFs) = to_segment(in.fs);
  s.segment(SegReg::kGs) = to_segment(in.gs);
  s.ldtr = to_segment(in.ldt);
  s.tr = to_segment(in.tr);
  s.gdtr = {static_cast<uint32_t>(in.gdt.base), in.gdt.limit};
  s.idtr = {static_cast<uint32_t>(in.idt.base), in.idt.limit};
  s.cr0 = static_cast<uint32_t>(in.cr0);
  s.cr2 = static_cast<uint32_t>(in.cr2);
  s.cr3 = static_cast<uint32_t>(in.cr3);
  s.cr4 = static_cast<uint32_t>(in.cr4);
}

void fill_kvm_debugregs(const CpuState& s, kvm_debugregs& out) {
  out = {};
  for (int i = 0; i < 4; ++i) out.db[i] = s.dr[i];
  out.dr6 = s.dr[6];
  out.dr7 = s.dr[7];
}

void read_kvm_debugregs(const kvm_debugregs& in, CpuState& s) {
  for (int i = 0; i < 4; ++i) s.dr[i] = static_cast<uint32_t>(in.db[i]);
  s.dr[4] = 0;
  s.dr[5] = 0;
  s.dr[6] = static_cast<uint32_t>(in.dr6);
  s.dr[7] = static_cast<uint32_t>(in.dr7);
}

void fill_kvm_events(const PendingEvents& e, kvm_vcpu_events& out) {
  out = {};
  if (e.exception) {
    out.exception.injected = 1;
    out.exception.nr = e.exception->vector;
    out.exception.has_error_code = e.exception->error_code.has_value();
    out.exception.error_code = e.exception->error_code.value_or(0);
  }
  if (e.interrupt) {
    out.interrupt.injected = 1;
    out.interrupt.nr = *e.interrupt;
  }
  out.interrupt.shadow = e.interrupt_shadow ? kShadowSti : 0;
  out.nmi.pending = e.nmi;
  out.flags = KVM_VCPUEVENT_VALID_SHADOW | KVM_VCPUEVENT_VALID_NMI_PENDING;
}

void read_kvm_events(const kvm_vcpu_events& in, PendingEvents& e) {
  e.exception.reset();
  if (in.exception.injected || in.exception.pending) {
    PendingException x;
    x.vector = in.exception.nr;
    if (in.exception.has_error_code) x.error_code = in.exception.error_code;
    e.exception = x;
  }
  e.interrupt.reset();
  if (in.interrupt.injected && !in.interrupt.soft) e.interrupt = in.interrupt.nr;
  e.interrupt_shadow = (in.interrupt.shadow & (kShadowMovSs | kShadowSti)) != 0;
  e.nmi = in.nmi.injected || in.nmi.pending;
}

void fill_kvm_xsave(const FpuState& f, KvmXsaveArea& out) {
  out = {};
  std::memcpy(out.region.data(), f.fxsave.data(), f.fxsave.size());
  std::memcpy(reinterpret_cast<uint8_t*>(out.region.data()) + kXstateBvOffset, &kXstateFpSse,
              sizeof kXstateFpSse);
}

void read_kvm_xsave(const KvmXsaveArea& in, FpuState& f) {
  std::memcpy(f.fxsave.data(), in.region.data(), f.fxsave.size());
}

// FXSAVE image offsets (Intel SDM vol. 1, table 10-2), 64-bit layout for the
// instruction and data pointers, which is what kvm_fpu's last_ip/last_dp
// hold (for a 32-bit guest the upper halves are FCS and FDS).
void fill_kvm_fpu(const FpuState& f, kvm_fpu& out) {
  out = {};
  const uint8_t* x = f.fxsave.data();
  std::memcpy(&out.fcw, x + 0, 2);
  std::memcpy(&out.fsw, x + 2, 2);
  out.ftwx = x[4];
  std::memcpy(&out.last_opcode, x + 6, 2);
  std::memcpy(&out.last_ip, x + 8, 8);
  std::memcpy(&out.last_dp, x + 16, 8);
  std::memcpy(&out.mxcsr, x + 24, 4);
  std::memcpy(out.fpr, x + 32, sizeof out.fpr);
  std::memcpy(out.xmm, x + 160, sizeof out.xmm);
}

void read_kvm_fpu(const kvm_fpu& in, FpuState& f) {
  f.fxsave.fill(0);
  uint8_t* x = f.fxsave.data();
  std::memcpy(x + 0, &in.fcw, 2);
  std::memcpy(x + 2, &in.fsw, 2);
  x[4] = in.ftwx;
  std::memcpy(x + 6, &in.last_opcode, 2);
  std::memcpy(x + 8, &in.last_ip, 8);
  std::memcpy(x + 16, &in.last_dp, 8);
  std::memcpy(x + 24, &in.mxcsr, 4);
  const uint32_t mxcsr_mask = 0xFFFF;
  std::memcpy(x + 28, &mxcsr_mask, 4);
  std::memcpy(x + 32, in.fpr, sizeof in.fpr);
  std::memcpy(x + 160, in.xmm, sizeof in.xmm);
}

KvmMsrBlock kvm_msr_request() {
  KvmMsrBlock b;
  b.nmsrs = KvmMsrBlock::kCount;
  for (uint32_t i = 0; i < KvmMsrBlock::kCount; ++i) b.entries[i].index = kMsrIndices[i];
  return b;
}

void fill_kvm_msrs(const CpuState& s, KvmMsrBlock& out) {
  out = kvm_msr_request();
  for (kvm_msr_entry& e : out.entries) e.data = msr_value(s, e.index);
}

void read_kvm_msrs(const KvmMsrBlock& in, CpuState& s) {
  if (in.nmsrs != KvmMsrBlock::kCount) {
    throw std::runtime_error(
        fmt::format("KVM returned {} MSRs, bt86 expects {}", in.nmsrs, KvmMsrBlock::kCount));
  }
  for (const kvm_msr_entry& e : in.entries) set_msr_value(s, e.index, e.data);
}

KvmVcpuImage to_kvm_image(const CpuState& s) {
  KvmVcpuImage image;
  fill_kvm_regs(s, image.regs);
  fill_kvm_sregs(s, image.sregs);
  fill_kvm_debugregs(s, image.debugregs);
  fill_kvm_events(s.events, image.events);
  fill_kvm_xsave(s.fpu, image.xsave);
  fill_kvm_msrs(s, image.msrs);
  return image;
}

CpuState to_cpu_state(const KvmVcpuImage& image) {
  CpuState s;
  read_kvm_regs(image.regs, s);
  read_kvm_sregs(image.sregs, s);
  read_kvm_debugregs(image.debugregs, s);
  read_kvm_events(image.events, s.events);
  read_kvm_xsave(image.xsave, s.fpu);
  read_kvm_msrs(image.msrs, s);
  return s;
}

}  // namespace bt86
