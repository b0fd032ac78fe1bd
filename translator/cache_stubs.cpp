#include "translator/cache_stubs.h"

#include <asmjit/x86.h>

#include <stdexcept>
#include <vector>

namespace bt86 {
namespace {

using namespace asmjit;

x86::Mem ctx_field(int32_t offset, uint32_t size = 0) {
  return x86::ptr(x86::r15, offset, size);
}

const x86::Gpd kGuestRegs[8] = {x86::eax, x86::ecx, x86::edx, x86::ebx,
                                x86::esp, x86::ebp, x86::esi, x86::edi};

// RAX is free here: the guest registers and flags are already saved.
void restore_vmm_and_return(x86::Assembler& a, const Label& fpu_load) {
  a.mov(x86::rax, ctx_field(ctx_offset::kVmmFsBase, 8));
  a.wrfsbase(x86::rax);
  a.cld();
  Label fpu_saved = a.newLabel();
  a.cmp(ctx_field(ctx_offset::kFpuLive, 4), Imm(0));
  a.je(fpu_saved);
  a.fxsave(ctx_field(ctx_offset::kFpu));
  a.fninit();
  a.ldmxcsr(ctx_field(ctx_offset::kHostMxcsr, 4));
  a.fldcw(ctx_field(ctx_offset::kHostFcw, 2));
  a.mov(ctx_field(ctx_offset::kFpuLive, 4), Imm(0));
  a.lea(x86::rax, x86::ptr(fpu_load));
  a.mov(ctx_field(ctx_offset::kFpuGate, 8), x86::rax);
  a.bind(fpu_saved);
  a.pop(x86::r15);
  a.pop(x86::r14);
  a.pop(x86::r13);
  a.pop(x86::r12);
  a.pop(x86::rbp);
  a.pop(x86::rbx);
  a.ret();
}

}  // namespace

CacheStubs emit_cache_stubs(CodeMemory& memory) {
  const uint64_t base = memory.exec_base();
  CodeHolder code;
  code.init(Environment(Arch::kX64), base);
  x86::Assembler a(&code);
  Label enter = a.newLabel(), exit_common = a.newLabel(), fault_exit = a.newLabel(),
        indirect_miss = a.newLabel(), fpu_load = a.newLabel(), fpu_ready = a.newLabel();

  a.bind(enter);
  a.push(x86::rbx);
  a.push(x86::rbp);
  a.push(x86::r12);
  a.push(x86::r13);
  a.push(x86::r14);
  a.push(x86::r15);
  a.mov(x86::r15, x86::rdi);
  a.mov(ctx_field(ctx_offset::kHostRsp), x86::rsp);
  a.mov(ctx_field(ctx_offset::kEntryTarget), x86::rsi);
  a.rdfsbase(x86::rax);
  a.mov(ctx_field(ctx_offset::kVmmFsBase), x86::rax);
  a.mov(x86::rax, ctx_field(ctx_offset::kFsWindowBase, 8));
  a.wrfsbase(x86::rax);
  a.mov(x86::rax, ctx_field(ctx_offset::kWindowBase, 8));
  a.wrgsbase(x86::rax);
  a.push(ctx_field(ctx_offset::kRflags, 8));
  a.popfq();
  for (int i = 0; i < 8; ++i) {
    if (i != 4) a.mov(kGuestRegs[i], ctx_field(ctx_offset::gpr(i), 4));
  }
  a.mov(x86::esp, ctx_field(ctx_offset::gpr(4), 4));
  a.jmp(ctx_field(ctx_offset::kEntryTarget, 8));

  a.align(AlignMode::kCode, 16);
  a.bind(exit_common);
  for (int i = 0; i < 8; ++i) a.mov(ctx_field(ctx_offset::gpr(i), 4), kGuestRegs[i]);
  a.mov(x86::rsp, ctx_field(ctx_offset::kHostRsp, 8));
  a.pushfq();
  a.pop(x86::rax);
  a.mov(ctx_field(ctx_offset::kRflags, 8), x86::rax);
  restore_vmm_and_return(a, fpu_load);

  a.align(AlignMode::kCode, 16);
  a.bind(fault_exit);
  a.mov(x86::rsp, ctx_field(ctx_offset::kHostRsp, 8));
  restore_vmm_and_return(a, fpu_load);

  a.align(AlignMode::kCode, 16);
  a.bind(indirect_miss);
  a.mov(ctx_field(ctx_offset::kEip, 4), x86::r8d);
  a.mov(ctx_field(ctx_offset::kExitId, 4), Imm(kExitIndirectMiss));
  a.jmp(exit_common);

  // Guest flags and registers are live: only flag-neutral instructions, and
  // r9, which no translation keeps anything in between instructions.
  a.align(AlignMode::kCode, 16);
  a.bind(fpu_load);
  a.stmxcsr(ctx_field(ctx_offset::kHostMxcsr, 4));
  a.fnstcw(ctx_field(ctx_offset::kHostFcw, 2));
  a.fxrstor(ctx_field(ctx_offset::kFpu));
  a.mov(ctx_field(ctx_offset::kFpuLive, 4), Imm(1));
  a.lea(x86::r9, x86::ptr(fpu_ready));
  a.mov(ctx_field(ctx_offset::kFpuGate, 8), x86::r9);
  a.bind(fpu_ready);
  a.jmp(ctx_field(ctx_offset::kFpuReturn, 8));
  a.align(AlignMode::kCode, 64);

  code.flatten();
  code.resolveUnresolvedLinks();
  std::vector<uint8_t> bytes(code.codeSize());
  if (code.relocateToBase(base) != kErrorOk ||
      code.copyFlattenedData(bytes.data(), bytes.size()) != kErrorOk) {
    throw std::runtime_error("cannot emit the translation cache stubs");
  }
  memory.write(base, bytes);
  CacheStubs stubs;
  stubs.enter = base + code.labelOffsetFromBase(enter);
  stubs.exit_common = base + code.labelOffsetFromBase(exit_common);
  stubs.fault_exit = base + code.labelOffsetFromBase(fault_exit);
  stubs.indirect_miss = base + code.labelOffsetFromBase(indirect_miss);
  stubs.fpu_load = base + code.labelOffsetFromBase(fpu_load);
  stubs.fpu_ready = base + code.labelOffsetFromBase(fpu_ready);
  stubs.end = base + bytes.size();
  return stubs;
}

}  // namespace bt86
