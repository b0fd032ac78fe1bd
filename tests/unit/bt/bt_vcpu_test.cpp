// The BT backend end to end on small flat guests: port I/O through the
// machine's bus, debug exit, power off on hlt with IF clear, interrupts
// from the PIT through the IDT, self-modifying code, paging with hidden and
// guest page faults.
#include <gtest/gtest.h>

#include <asmjit/x86.h>

#include <cstring>
#include <functional>
#include <string>

#include "monitor/flat_boot_state.h"
#include "monitor/machine.h"
#include "runtime/bt/bt_vcpu.h"

namespace bt86 {
namespace {

using namespace asmjit;

constexpr uint32_t kCode = 0x100000;
constexpr uint32_t kGdt = 0x8000;
constexpr uint32_t kStack = 0x90000;

class RecordingSerial final : public SerialOutput {
 public:
  void write(std::span<const uint8_t> bytes) override { text.append(bytes.begin(), bytes.end()); }
  std::string text;
};

class BtVcpuTest : public ::testing::Test {
 protected:
  BtVcpuTest() {
    MachineParts parts;
    parts.ram_size = 32u << 20;
    parts.serial = &serial_;
    machine_ = std::make_unique<Machine>(std::move(parts));
    vcpu_ = std::make_unique<BtVcpu>(*machine_, BtOptions{.translation_cache_bytes = 4u << 20});
  }

  void load(uint32_t address, const std::function<void(x86::Assembler&)>& body) {
    CodeHolder code;
    code.init(Environment(Arch::kX86), address);
    x86::Assembler a(&code);
    body(a);
    code.flatten();
    code.resolveUnresolvedLinks();
    code.relocateToBase(address);
    std::vector<uint8_t> bytes(code.codeSize());
    ASSERT_EQ(code.copyFlattenedData(bytes.data(), bytes.size()), kErrorOk);
    machine_->memory().write(address, bytes);
  }

  VcpuExit run_from(uint32_t entry) {
    CpuState s = flat_boot_state(machine_->memory(), kGdt, entry);
    s.reg(Gpr::kEsp) = kStack;
    vcpu_->set_state(s);
    return vcpu_->run();
  }

  // CR3 = directory, CR4.PSE, then CR0.PG; clobbers EAX.
  static void enable_paging(x86::Assembler& a, uint32_t directory) {
    a.mov(x86::eax, directory);
    a.mov(x86::cr3, x86::eax);
    a.mov(x86::eax, x86::cr4);
    a.or_(x86::eax, cr4::kPse);
    a.mov(x86::cr4, x86::eax);
    a.mov(x86::eax, x86::cr0);
    a.or_(x86::eax, cr0::kPg);
    a.mov(x86::cr0, x86::eax);
  }

  // A 32-bit interrupt gate at vector of the IDT at idt, to handler.
  void set_interrupt_gate(uint32_t idt, uint8_t vector, uint32_t handler) {
    GuestMemory& m = machine_->memory();
    m.write_u32(idt + vector * 8, (kBootCodeSelector << 16) | (handler & 0xFFFF));
    m.write_u32(idt + vector * 8 + 4, (handler & 0xFFFF0000) | 0x8E00);
  }

  // lidt of a 256-entry IDT at idt, through 8 bytes of the stack it keeps.
  static void load_idt(x86::Assembler& a, uint32_t idt) {
    a.sub(x86::esp, 8);
    a.mov(x86::word_ptr(x86::esp), 0x7FF);
    a.mov(x86::dword_ptr(x86::esp, 2), idt);
    a.lidt(x86::ptr(x86::esp));
  }

  // PIC master at vector 0x20 with only IRQ 0 unmasked, PIT channel 0 in
  // mode 2 at about 1 kHz; clobbers AL.
  static void start_timer_irq(x86::Assembler& a) {
    for (auto [port, value] :
         {std::pair{0x20, 0x11}, {0x21, 0x20}, {0x21, 0x04}, {0x21, 0x01}, {0x21, 0xFE}}) {
      a.mov(x86::al, value);
      a.out(Imm(port), x86::al);
    }
    a.mov(x86::al, 0x34);
    a.out(Imm(0x43), x86::al);
    a.mov(x86::al, 0xA9);
    a.out(Imm(0x40), x86::al);
    a.mov(x86::al, 0x04);
    a.out(Imm(0x40), x86::al);
  }

  static void debug_exit(x86::Assembler& a, uint8_t value) {
    a.mov(x86::al, value);
    a.out(Imm(0xF4), x86::al);
  }

  RecordingSerial serial_;
  std::unique_ptr<Machine> machine_;
  std::unique_ptr<BtVcpu> vcpu_;
};

TEST_F(BtVcpuTest, SerialOutputAndDebugExit) {
  load(kCode, [](x86::Assembler& a) {
    a.mov(x86::dx, 0x3F8);
    a.mov(x86::al, 'h');
    a.out(x86::dx, x86::al);
    a.mov(x86::al, 'i');
    a.out(x86::dx, x86::al);
    debug_exit(a, 5);
  });
  const VcpuExit exit = run_from(kCode);
  EXPECT_EQ(exit.kind, VcpuExit::Kind::kDebugExit) << exit.message;
  EXPECT_EQ(exit.status, (5 << 1) | 1);
  EXPECT_EQ(serial_.text, "hi");
}

// A 16-bit code segment (D clear) runs its code as 16-bit code: default
// operand and address sizes of 16 bits, 66 for 32-bit operands, [si+disp]
// wrapping at 64 KiB, call/ret pushing IP, loop counting CX alone.
TEST_F(BtVcpuTest, SixteenBitCodeSegmentRunsSixteenBitCode) {
  constexpr uint32_t kData = 0x200000;
  const std::vector<uint8_t> code = {
      0xB8, 0x34, 0x12,                    // 0:  mov ax, 0x1234
      0x66, 0xBB, 0x78, 0x56, 0x34, 0x12,  // 3:  mov ebx, 0x12345678
      0x01, 0xC3,                          // 9:  add bx, ax
      0xBE, 0xF0, 0xFF,                    // 11: mov si, 0xfff0
      0x89, 0x44, 0x20,                    // 14: mov [si+0x20], ax (offset 0x10)
      0x8B, 0x0E, 0x10, 0x00,              // 17: mov cx, [0x0010]
      0x89, 0xCF,                          // 21: mov di, cx
      0x66, 0xBA, 0x00, 0x00, 0xFF, 0xFF,  // 23: mov edx, 0xffff0000
      0xE8, 0x14, 0x00,                    // 29: call 52
      0x66, 0xB9, 0x05, 0x00, 0x01, 0x00,  // 32: mov ecx, 0x00010005
      0x42,                                // 38: inc dx
      0xE2, 0xFD,                          // 39: loop 38
      0x68, 0xEF, 0xBE,                    // 41: push 0xbeef
      0x5D,                                // 44: pop bp
      0x8D, 0x70, 0x05,                    // 45: lea si, [bx+si+5]
      0xB0, 0x07,                          // 48: mov al, 7
      0xE6, 0xF4,                          // 50: out 0xf4, al
      0x42,                                // 52: inc dx
      0xC3,                                // 53: ret
  };
  machine_->memory().write(kCode, code);
  CpuState s = flat_boot_state(machine_->memory(), kGdt, 0);
  Segment& cs = s.segment(SegReg::kCs);
  cs.db = false;
  cs.base = kCode;
  cs.limit = 0xFFFF;
  s.segment(SegReg::kDs).base = kData;
  s.reg(Gpr::kEsp) = kStack;
  vcpu_->set_state(s);
  const VcpuExit exit = vcpu_->run();
  ASSERT_EQ(exit.kind, VcpuExit::Kind::kDebugExit) << exit.message;
  EXPECT_EQ(exit.status, (7 << 1) | 1);
  const CpuState& r = vcpu_->state();
  EXPECT_EQ(r.reg(Gpr::kEax), 0x1207u);
  EXPECT_EQ(r.reg(Gpr::kEbx), 0x123468ACu);
  EXPECT_EQ(r.reg(Gpr::kEcx), 0x00010000u);
  EXPECT_EQ(r.reg(Gpr::kEdx), 0xFFFF0006u);
  EXPECT_EQ(r.reg(Gpr::kEsi), 0x68A1u);
  EXPECT_EQ(r.reg(Gpr::kEdi), 0x1234u);
  EXPECT_EQ(r.reg(Gpr::kEbp), 0xBEEFu);
  EXPECT_EQ(r.reg(Gpr::kEsp), kStack);
  EXPECT_EQ(machine_->memory().read_u32(kData + 0x10) & 0xFFFF, 0x1234u);
  EXPECT_EQ(machine_->memory().read_u32(kStack - 4) >> 16, 0xBEEFu);
}

// Running off the end of CS reaches the guest as #GP(0) through its IDT,
// with the pushed EIP that of the first instruction past the limit.
TEST_F(BtVcpuTest, RunningPastTheCodeSegmentLimitIsGeneralProtection) {
  constexpr uint32_t kIdt = 0x202000;
  constexpr uint32_t kHandler = kCode + 0x800;
  set_interrupt_gate(kIdt, vector::kGp, kHandler);
  load(kHandler, [](x86::Assembler& a) {
    a.pop(x86::ecx);  // Error code.
    a.pop(x86::edx);  // EIP.
    a.cli();
    a.hlt();
  });
  uint32_t beyond = 0;
  load(kCode, [&](x86::Assembler& a) {
    load_idt(a, kIdt);
    a.mov(x86::eax, 0x1234);
    beyond = kCode + static_cast<uint32_t>(a.offset());
    a.mov(x86::eax, 0x9999);
    a.hlt();
  });
  CpuState s = flat_boot_state(machine_->memory(), kGdt, kCode);
  s.reg(Gpr::kEsp) = kStack;
  s.reg(Gpr::kEcx) = 0xFFFF;
  s.segment(SegReg::kCs).limit = beyond - 1;
  vcpu_->set_state(s);
  const VcpuExit exit = vcpu_->run();
  ASSERT_EQ(exit.kind, VcpuExit::Kind::kPowerOff) << exit.message;
  EXPECT_EQ(vcpu_->state().reg(Gpr::kEax), 0x1234u);
  EXPECT_EQ(vcpu_->state().reg(Gpr::kEcx), 0u);
  EXPECT_EQ(vcpu_->state().reg(Gpr::kEdx), beyond);
}

TEST_F(BtVcpuTest, HaltWithInterruptsDisabledPowersOff) {
  load(kCode, [](x86::Assembler& a) {
    a.cli();
    a.mov(x86::eax, 0x1234);
    a.hlt();
  });
  const VcpuExit exit = run_from(kCode);
  EXPECT_EQ(exit.kind, VcpuExit::Kind::kPowerOff) << exit.message;
  EXPECT_EQ(vcpu_->state().reg(Gpr::kEax), 0x1234u);
}

// The routine patches the immediate of an instruction it has already run
// (and so translated): the second run must see the new value.
TEST_F(BtVcpuTest, SelfModifyingCodeIsRetranslated) {
  constexpr uint32_t kRoutine = kCode + 0x100;
  load(kRoutine, [](x86::Assembler& a) {
    a.mov(x86::eax, 1);  // b8 imm32: the immediate is at kRoutine + 1.
    a.ret();
  });
  load(kCode, [&](x86::Assembler& a) {
    a.mov(x86::ecx, kRoutine);
    a.call(x86::ecx);
    a.mov(x86::ebx, x86::eax);
    a.mov(x86::dword_ptr(kRoutine + 1), 42);
    a.call(x86::ecx);
    a.add(x86::eax, x86::ebx);
    a.out(Imm(0xF4), x86::al);
  });
  const VcpuExit exit = run_from(kCode);
  EXPECT_EQ(exit.kind, VcpuExit::Kind::kDebugExit) << exit.message;
  EXPECT_EQ(exit.status, (43 << 1) | 1);
}

// A store to the very next instruction: the running unit must not be resumed.
TEST_F(BtVcpuTest, StoreToTheNextInstructionTakesEffect) {
  load(kCode, [](x86::Assembler& a) {
    Label next = a.newLabel();
    a.mov(x86::byte_ptr(next, 1), 7);  // Patch "mov al, 3" into "mov al, 7".
    a.bind(next);
    a.mov(x86::al, 3);
    a.out(Imm(0xF4), x86::al);
  });
  const VcpuExit exit = run_from(kCode);
  EXPECT_EQ(exit.kind, VcpuExit::Kind::kDebugExit) << exit.message;
  EXPECT_EQ(exit.status, (7 << 1) | 1);
}

// A unit with no FPU instruction is shared by the FPU modes, but the one it
// calls holds an fwait, right only in the mode it was translated in: the
// call must not be linked, or the second call would run the fwait of
// CR0.TS clear after TS and MP were set (#NM expected).
TEST_F(BtVcpuTest, ASharedUnitIsNotLinkedToCodeOfOneFpuMode) {
  constexpr uint32_t kIdt = 0x202000;
  constexpr uint32_t kHandler = kCode + 0x800, kFunction = kCode + 0x400;
  set_interrupt_gate(kIdt, 7, kHandler);
  load(kHandler, [](x86::Assembler& a) { debug_exit(a, 0x55); });
  load(kFunction, [](x86::Assembler& a) {
    a.fwait();
    a.ret();
  });
  load(kCode, [&](x86::Assembler& a) {
    load_idt(a, kIdt);
    a.mov(x86::esi, 2);
    Label again = a.newLabel();
    a.jmp(again);  // Both rounds enter the same unit.
    a.bind(again);
    a.call(Imm(kFunction));
    a.mov(x86::eax, x86::cr0);
    a.or_(x86::eax, cr0::kTs | cr0::kMp);
    a.mov(x86::cr0, x86::eax);
    a.dec(x86::esi);
    a.jnz(again);
    debug_exit(a, 0x7F);
  });
  const VcpuExit exit = run_from(kCode);
  ASSERT_EQ(exit.kind, VcpuExit::Kind::kDebugExit) << exit.message;
  EXPECT_EQ(exit.status, (0x55 << 1) | 1);
}

// Paging on with 4 MiB identity pages plus one 4 KiB page mapped elsewhere:
// data goes through the shadow windows, and a not-present page gives #PF
// with CR2 and the error code through the IDT.
TEST_F(BtVcpuTest, PagingAndGuestPageFault) {
  constexpr uint32_t kDir = 0x200000, kTable = 0x201000, kIdt = 0x202000;
  constexpr uint32_t kHandler = kCode + 0x800;
  GuestMemory& m = machine_->memory();
  m.write_u32(kDir + 0 * 4, 0x00000083);          // 0-4 MiB, 4 MiB page, RW.
  m.write_u32(kDir + 1 * 4, kTable | 0x3);        // 4-8 MiB through a table.
  m.write_u32(kTable + 0 * 4, 0x00300000 | 0x3);  // 0x400000 -> 0x300000.
  // IDT entry 14: 32-bit interrupt gate to kHandler, selector 0x10.
  set_interrupt_gate(kIdt, 14, kHandler);
  m.write_u32(0x300010, 0xCAFE);
  load(kHandler, [](x86::Assembler& a) {
    a.pop(x86::ecx);  // Error code.
    a.mov(x86::edx, x86::cr2);
    a.mov(x86::al, x86::cl);
    a.shl(x86::al, 4);
    a.cmp(x86::edx, 0x401000);
    Label bad = a.newLabel();
    a.jne(bad);
    a.or_(x86::al, 1);
    a.bind(bad);
    a.out(Imm(0xF4), x86::al);
  });
  load(kCode, [&](x86::Assembler& a) {
    load_idt(a, kIdt);
    enable_paging(a, kDir);
    a.mov(x86::ebx, x86::dword_ptr(0x400010));  // Through the 4 KiB page.
    a.cmp(x86::ebx, 0xCAFE);
    Label wrong = a.newLabel();
    a.jne(wrong);
    a.mov(x86::dword_ptr(0x401000), 1);  // Not present: #PF(W) with CR2.
    a.bind(wrong);
    a.mov(x86::al, 0x7F);
    a.out(Imm(0xF4), x86::al);
  });
  const VcpuExit exit = run_from(kCode);
  ASSERT_EQ(exit.kind, VcpuExit::Kind::kDebugExit) << exit.message;
  // Error code 2 (write, not present) in the high nibble, CR2 matched.
  EXPECT_EQ(exit.status, ((0x21) << 1) | 1);
}

// Linked code across pages must follow the guest's page tables: a call
// into another (non-global) page runs three times; the last two go through
// the same direct exit (of the unit at the loop head), linked after the
// second. Between them that page is remapped to another frame, either by
// rewriting its page-table entry (no invlpg: the walk the hardware would
// make sees the new entry) or by switching to a second address space. The
// third call must run the new frame's code (eax = 2), not a stale link.
class BtRemapTest : public BtVcpuTest {
 protected:
  static constexpr uint32_t kDir = 0x200000, kTable = 0x201000;
  static constexpr uint32_t kDir2 = 0x202000, kTable2 = 0x203000;
  static constexpr uint32_t kRemapped = 0x400000;
  static constexpr uint32_t kFrameA = 0x300000, kFrameB = 0x301000;

  // remap: run between the second and the third call; the guest exits with
  // the three results as two-bit fields, first call highest (1,1,2: 0x16).
  // trace_table: touch data in the page first, so the shadow MMU derives a
  // mapping from its table and traces that table.
  VcpuExit run_remap(const std::function<void(x86::Assembler&)>& remap, bool trace_table = true) {
    GuestMemory& m = machine_->memory();
    for (uint32_t dir : {kDir, kDir2}) m.write_u32(dir, 0x00000083);  // 0-4 MiB, 4 MiB page.
    m.write_u32(kDir + 4, kTable | 0x3);
    m.write_u32(kDir2 + 4, kTable2 | 0x3);
    m.write_u32(kTable, kFrameA | 0x3);
    m.write_u32(kTable2, kFrameB | 0x3);
    load(kFrameA, [](x86::Assembler& a) {
      a.mov(x86::eax, 1);
      a.ret();
    });
    load(kFrameB, [](x86::Assembler& a) {
      a.mov(x86::eax, 2);
      a.ret();
    });
    load(kCode, [&](x86::Assembler& a) {
      enable_paging(a, kDir);
      if (trace_table) a.mov(x86::eax, x86::dword_ptr(kRemapped + 0x800));
      a.xor_(x86::ebx, x86::ebx);
      a.mov(x86::esi, 3);
      Label again = a.newLabel(), same = a.newLabel();
      a.bind(again);
      a.call(Imm(kRemapped));
      a.shl(x86::ebx, 2);
      a.or_(x86::ebx, x86::eax);
      a.cmp(x86::esi, 2);
      a.jne(same);
      remap(a);
      a.bind(same);
      a.dec(x86::esi);
      a.jnz(again);
      a.mov(x86::eax, x86::ebx);
      a.out(Imm(0xF4), x86::al);
    });
    return run_from(kCode);
  }

  // Spaces kDir and kDir2 map 0-4 MiB with one non-global 4 MiB page; the
  // callee's 4 MiB (kRemapped) is kFrameA through kTable in kDir and
  // second_region in kDir2. The callee counts its calls in EBX.
  void two_spaces_with_counting_callee(uint32_t second_region) {
    GuestMemory& m = machine_->memory();
    for (uint32_t dir : {kDir, kDir2}) m.write_u32(dir, 0x00000083);
    m.write_u32(kDir + 4, kTable | 0x3);
    m.write_u32(kDir2 + 4, second_region);
    m.write_u32(kTable, kFrameA | 0x3);
    load(kFrameA, [](x86::Assembler& a) {
      a.inc(x86::ebx);
      a.ret();
    });
  }

  // Runs body `rounds` times from kCode with paging on in kDir; the exit's
  // status is EBX (the callee's count).
  VcpuExit run_rounds(int rounds, const std::function<void(x86::Assembler&)>& body) {
    load(kCode, [&](x86::Assembler& a) {
      enable_paging(a, kDir);
      a.xor_(x86::ebx, x86::ebx);
      a.mov(x86::esi, rounds);
      Label again = a.newLabel();
      a.bind(again);
      body(a);
      a.dec(x86::esi);
      a.jnz(again);
      a.mov(x86::eax, x86::ebx);
      a.out(Imm(0xF4), x86::al);
    });
    return run_from(kCode);
  }
};

TEST_F(BtRemapTest, PageTableRewriteAndInvlpgRetargetsALinkedCall) {
  const VcpuExit exit = run_remap([](x86::Assembler& a) {
    a.mov(x86::dword_ptr(kTable), kFrameB | 0x3);
    a.invlpg(x86::dword_ptr(kRemapped));
  });
  ASSERT_EQ(exit.kind, VcpuExit::Kind::kDebugExit) << exit.message;
  EXPECT_EQ(exit.status, (0x16 << 1) | 1);
  EXPECT_NE(vcpu_->statistics().find(" 1 code pages closed by invlpg"), std::string::npos)
      << vcpu_->statistics();
}

TEST_F(BtRemapTest, AddressSpaceSwitchRetargetsALinkedCall) {
  const VcpuExit exit = run_remap([](x86::Assembler& a) {
    a.mov(x86::ecx, kDir2);
    a.mov(x86::cr3, x86::ecx);
  });
  ASSERT_EQ(exit.kind, VcpuExit::Kind::kDebugExit) << exit.message;
  EXPECT_EQ(exit.status, (0x16 << 1) | 1);
}

// A unit valid in both spaces (the same frame behind the same page, as in a
// forked process) stays linked and its guard open across switches: each
// switch walks its page in the new tables and finds the same frame.
TEST_F(BtRemapTest, ASwitchKeepsTheGuardsOfUnitsValidInBothSpaces) {
  two_spaces_with_counting_callee(kTable2 | 0x3);
  machine_->memory().write_u32(kTable2, kFrameA | 0x3);
  constexpr int kRounds = 6;
  const VcpuExit exit = run_rounds(kRounds, [](x86::Assembler& a) {
    a.call(Imm(kRemapped));
    a.call(Imm(kRemapped));
    a.mov(x86::edi, x86::cr3);
    a.xor_(x86::edi, kDir ^ kDir2);
    a.mov(x86::cr3, x86::edi);
  });
  ASSERT_EQ(exit.kind, VcpuExit::Kind::kDebugExit) << exit.message;
  EXPECT_EQ(exit.status, (2 * kRounds << 1) | 1);
  // The callee's page and the caller's, at each of the 5 switches.
  EXPECT_NE(vcpu_->statistics().find(" 10 code pages kept open and 0 reopened"), std::string::npos)
      << vcpu_->statistics();
  EXPECT_EQ(vcpu_->counters().closed_guards_hit, 0u) << vcpu_->statistics();
  EXPECT_LT(vcpu_->counters().chained_jumps, uint64_t{kRounds - 1}) << vcpu_->statistics();
}

// Units translated while their page was non-global stop being walked at
// each switch once the page is global (Linux's text, first run from its
// early tables): the first switch after the entries gain G promotes them.
TEST_F(BtRemapTest, AGuardedPageThatBecameGlobalIsPromotedAtTheNextSwitch) {
  two_spaces_with_counting_callee(kTable2 | 0x3);
  machine_->memory().write_u32(kTable2, kFrameA | 0x3);
  constexpr int kRounds = 6;
  const VcpuExit exit = run_rounds(kRounds, [](x86::Assembler& a) {
    a.mov(x86::eax, x86::cr4);  // PGE, before the first call translates the callee.
    a.or_(x86::eax, cr4::kPge);
    a.mov(x86::cr4, x86::eax);
    a.call(Imm(kRemapped));
    a.mov(x86::dword_ptr(kTable), kFrameA | pte::kGlobal | pte::kAccessed | 0x3);
    a.mov(x86::dword_ptr(kTable2), kFrameA | pte::kGlobal | pte::kAccessed | 0x3);
    a.mov(x86::edi, x86::cr3);
    a.xor_(x86::edi, kDir ^ kDir2);
    a.mov(x86::cr3, x86::edi);
  });
  ASSERT_EQ(exit.kind, VcpuExit::Kind::kDebugExit) << exit.message;
  EXPECT_EQ(exit.status, (kRounds << 1) | 1);
  // Of the callee's page and the caller's, only the caller's is walked at
  // each of the 5 switches.
  EXPECT_NE(vcpu_->statistics().find(" 5 code pages kept open and 0 reopened across TLB flushes, "
                                     "1 found global and promoted"),
            std::string::npos)
      << vcpu_->statistics();
}

// A space that does not map the callee's page closes its guard; the switch
// back, which finds the frame there again, reopens it without a trip to the
// dispatcher (a shell's text after its child exec'd something else).
TEST_F(BtRemapTest, AGuardClosedWhereItsPageIsUnmappedReopensWhenThePageComesBack) {
  two_spaces_with_counting_callee(0);  // The callee's 4 MiB: not present in kDir2.
  constexpr int kRounds = 6;
  const VcpuExit exit = run_rounds(kRounds, [](x86::Assembler& a) {
    a.call(Imm(kRemapped));
    a.mov(x86::edi, kDir2);
    a.mov(x86::cr3, x86::edi);
    a.mov(x86::edi, kDir);
    a.mov(x86::cr3, x86::edi);
  });
  ASSERT_EQ(exit.kind, VcpuExit::Kind::kDebugExit) << exit.message;
  EXPECT_EQ(exit.status, (kRounds << 1) | 1);
  EXPECT_NE(vcpu_->statistics().find(" code pages kept open and 6 reopened"), std::string::npos)
      << vcpu_->statistics();
  EXPECT_EQ(vcpu_->counters().closed_guards_hit, 0u) << vcpu_->statistics();
}

// Nothing traces a table no shadow mapping came from: the store counts once
// the guest flushes its TLB by reloading CR3 with the same value.
TEST_F(BtRemapTest, UntracedTableStoreCountsAfterACr3Reload) {
  const VcpuExit exit = run_remap(
      [](x86::Assembler& a) {
        a.mov(x86::dword_ptr(kTable), kFrameB | 0x3);
        a.mov(x86::ecx, x86::cr3);
        a.mov(x86::cr3, x86::ecx);
      },
      false);
  ASSERT_EQ(exit.kind, VcpuExit::Kind::kDebugExit) << exit.message;
  EXPECT_EQ(exit.status, (0x16 << 1) | 1);
}

// A store to a page table of the current space that maps other pages
// leaves the linked call alone: it still runs frame A's code.
TEST_F(BtRemapTest, UnrelatedPageTableStoreKeepsTheLink) {
  const VcpuExit exit =
      run_remap([](x86::Assembler& a) { a.mov(x86::dword_ptr(kTable + 4), kFrameB | 0x3); });
  ASSERT_EQ(exit.kind, VcpuExit::Kind::kDebugExit) << exit.message;
  EXPECT_EQ(exit.status, (0x15 << 1) | 1);
  EXPECT_NE(vcpu_->statistics().find(" 0 code pages closed by invlpg"), std::string::npos)
      << vcpu_->statistics();
}

// The PIT's IRQ 0 reaches an sti; hlt loop through the IDT.
TEST_F(BtVcpuTest, TimerInterruptWakesHalt) {
  constexpr uint32_t kIdt = 0x202000;
  constexpr uint32_t kHandler = kCode + 0x800;
  set_interrupt_gate(kIdt, 0x20, kHandler);
  load(kHandler, [](x86::Assembler& a) {
    a.mov(x86::al, 0x20);
    a.out(Imm(0x20), x86::al);  // EOI.
    a.inc(x86::esi);
    a.iretd();
  });
  load(kCode, [&](x86::Assembler& a) {
    load_idt(a, kIdt);
    start_timer_irq(a);
    a.xor_(x86::esi, x86::esi);
    Label wait = a.newLabel();
    a.bind(wait);
    a.sti();
    a.hlt();
    a.cmp(x86::esi, 3);
    a.jb(wait);
    a.cli();
    a.mov(x86::al, 9);
    a.out(Imm(0xF4), x86::al);
  });
  const VcpuExit exit = run_from(kCode);
  ASSERT_EQ(exit.kind, VcpuExit::Kind::kDebugExit) << exit.message;
  EXPECT_EQ(exit.status, (9 << 1) | 1);
}

// An interrupt waiting while IF is clear comes right after a popf that sets
// IF (popf has no interrupt shadow), but one instruction after sti.
TEST_F(BtVcpuTest, PopfSettingIfTakesAWaitingInterruptAtOnceStiAfterOneInstruction) {
  constexpr uint32_t kIdt = 0x202000;
  constexpr uint32_t kHandler = kCode + 0x800;
  constexpr uint32_t kResult = 0x200000;  // Saved EIPs, then the expected ones.
  set_interrupt_gate(kIdt, 0x20, kHandler);
  load(kHandler, [](x86::Assembler& a) {
    a.mov(x86::eax, x86::dword_ptr(x86::esp));
    a.mov(x86::dword_ptr(kResult, x86::esi, 2), x86::eax);
    a.inc(x86::esi);
    a.mov(x86::al, 0x20);
    a.out(Imm(0x20), x86::al);                     // EOI.
    a.and_(x86::dword_ptr(x86::esp, 8), ~0x200u);  // Back with IF clear.
    a.iretd();
  });
  load(kCode, [&](x86::Assembler& a) {
    load_idt(a, kIdt);
    start_timer_irq(a);
    a.xor_(x86::esi, x86::esi);
    const auto wait_for_irq0 = [&a] {
      Label poll = a.newLabel();
      a.mov(x86::al, 0x0A);  // OCW3: reads return the IRR.
      a.out(Imm(0x20), x86::al);
      a.bind(poll);
      a.in(x86::al, Imm(0x20));
      a.test(x86::al, 1);
      a.jz(poll);
    };
    Label after_popf = a.newLabel(), after_sti = a.newLabel(), second = a.newLabel();
    wait_for_irq0();
    a.push(Imm(0x202));
    a.popfd();
    a.bind(after_popf);
    a.nop();
    a.nop();
    wait_for_irq0();
    a.sti();
    a.nop();
    a.bind(after_sti);
    a.nop();
    a.bind(second);
    a.nop();
    a.cli();
    a.lea(x86::eax, x86::ptr(after_popf));
    a.mov(x86::dword_ptr(kResult + 8), x86::eax);
    a.lea(x86::eax, x86::ptr(after_sti));
    a.mov(x86::dword_ptr(kResult + 12), x86::eax);
    debug_exit(a, 9);
  });
  const VcpuExit exit = run_from(kCode);
  ASSERT_EQ(exit.kind, VcpuExit::Kind::kDebugExit) << exit.message;
  EXPECT_EQ(vcpu_->state().reg(Gpr::kEsi), 2u);
  GuestMemory& m = machine_->memory();
  EXPECT_EQ(m.read_u32(kResult), m.read_u32(kResult + 8)) << "after popf";
  EXPECT_EQ(m.read_u32(kResult + 4), m.read_u32(kResult + 12)) << "one instruction after sti";
}

// iretd back to the code segment it runs in (Linux's return from a kernel
// exception or interrupt, and sync_core()'s iret to itself) runs in the
// cache once the runtime has seen that CS reload: only the first of 1000
// takes the callout. The image's arithmetic flags, DF, IOPL, AC and ID
// come back through pushfd.
TEST_F(BtVcpuTest, IretToTheSameCodeSegmentStaysInTheCache) {
  constexpr uint32_t kResult = 0x200000;
  constexpr uint32_t kImage =
      0x8D5 | eflags::kDf | eflags::kIoplMask | eflags::kAc | eflags::kId | eflags::kFixed1;
  load(kCode, [&](x86::Assembler& a) {
    const auto iret_to = [&a](const Label& target) {
      a.push(x86::cs);
      a.lea(x86::eax, x86::ptr(target));
      a.push(x86::eax);
      a.iretd();
    };
    a.mov(x86::ecx, 1000);
    Label loop = a.newLabel();
    a.bind(loop);
    a.pushfd();
    Label next = a.newLabel();
    iret_to(next);
    a.bind(next);
    a.dec(x86::ecx);
    a.jnz(loop);
    a.push(Imm(kImage));
    Label after = a.newLabel();
    iret_to(after);
    a.bind(after);
    a.pushfd();
    a.pop(x86::dword_ptr(kResult));
    a.push(Imm(eflags::kFixed1));
    a.popfd();
    debug_exit(a, 0x33);
  });
  const VcpuExit exit = run_from(kCode);
  ASSERT_EQ(exit.kind, VcpuExit::Kind::kDebugExit) << exit.message;
  EXPECT_EQ(exit.status, (0x33 << 1) | 1);
  EXPECT_EQ(machine_->memory().read_u32(kResult), kImage);
  EXPECT_EQ(vcpu_->counters().callouts.at("iretd"), 1u) << vcpu_->statistics();
}

// The hardware reloads CS from the GDT even for the selector it holds: a
// descriptor rewritten since (here: limit 4 KiB, so the return address is
// past it) makes the next iretd to it raise #GP(0), in the cache or not.
TEST_F(BtVcpuTest, IretReloadsACodeDescriptorRewrittenInTheGdt) {
  constexpr uint32_t kGdt2 = 0x9000;
  constexpr uint32_t kIdt = 0x202000;
  constexpr uint32_t kHandler = kCode + 0x800;
  constexpr uint16_t kSecondCode = 0x20;
  GuestMemory& m = machine_->memory();
  const auto descriptor = [&m](uint32_t selector, uint64_t value) {
    m.write_u32(kGdt2 + selector, static_cast<uint32_t>(value));
    m.write_u32(kGdt2 + selector + 4, static_cast<uint32_t>(value >> 32));
  };
  descriptor(0, 0);
  descriptor(kBootCodeSelector, 0x00CF9B000000FFFFull);
  descriptor(kBootDataSelector, 0x00CF93000000FFFFull);
  descriptor(kSecondCode, 0x00CF9B000000FFFFull);
  set_interrupt_gate(kIdt, 13, kHandler);
  load(kHandler, [](x86::Assembler& a) { debug_exit(a, 0x13); });
  load(kCode, [&](x86::Assembler& a) {
    const auto iret_to_second = [&a, kSecondCode](const Label& target) {
      a.pushfd();
      a.push(Imm(kSecondCode));
      a.lea(x86::eax, x86::ptr(target));
      a.push(x86::eax);
      a.iretd();
    };
    load_idt(a, kIdt);
    a.sub(x86::esp, 8);
    a.mov(x86::word_ptr(x86::esp), 5 * 8 - 1);
    a.mov(x86::dword_ptr(x86::esp, 2), kGdt2);
    a.lgdt(x86::ptr(x86::esp));
    Label first = a.newLabel(), second = a.newLabel(), third = a.newLabel();
    iret_to_second(first);  // A callout: another CS.
    a.bind(first);
    iret_to_second(second);  // The same CS, in the cache.
    a.bind(second);
    a.mov(x86::dword_ptr(kGdt2 + kSecondCode), 0x00000FFF);
    a.mov(x86::dword_ptr(kGdt2 + kSecondCode + 4), 0x00409B00);
    iret_to_second(third);
    a.bind(third);
    debug_exit(a, 0x55);
  });
  const VcpuExit exit = run_from(kCode);
  ASSERT_EQ(exit.kind, VcpuExit::Kind::kDebugExit) << exit.message;
  EXPECT_EQ(exit.status, (0x13 << 1) | 1);
}

// A store beside the code (its page is traced for the code) in a loop: it
// is adapted after a few trace faults and keeps giving the right values.
TEST_F(BtVcpuTest, RepeatedTraceFaultsAreAdapted) {
  constexpr uint32_t kData = kCode + 0x200;
  load(kCode, [&](x86::Assembler& a) {
    a.mov(x86::ecx, 100);
    Label loop = a.newLabel();
    a.bind(loop);
    a.mov(x86::dword_ptr(kData), x86::ecx);
    a.add(x86::dword_ptr(kData + 4), 1);
    a.dec(x86::ecx);
    a.jnz(loop);
    a.mov(x86::eax, x86::dword_ptr(kData + 4));
    a.out(Imm(0xF4), x86::al);
  });
  const VcpuExit exit = run_from(kCode);
  ASSERT_EQ(exit.kind, VcpuExit::Kind::kDebugExit) << exit.message;
  EXPECT_EQ(exit.status, (100 << 1) | 1);
  EXPECT_EQ(machine_->memory().read_u32(kData), 1u);
  EXPECT_EQ(vcpu_->counters().adaptations, 2u);
  EXPECT_LT(vcpu_->counters().trace_faults[2], 40u);
}

// The read-modify-write stores Linux changes live page-table entries with,
// beside the code so they keep hitting a traced page: once adapted they run
// in software, and the flags and the exchanged register come out as the
// hardware leaves them.
TEST_F(BtVcpuTest, AdaptedReadModifyWriteStoresKeepFlagsAndRegisters) {
  constexpr uint32_t kData = kCode + 0x200;
  load(kCode, [&](x86::Assembler& a) {
    a.xor_(x86::esi, x86::esi);
    a.xor_(x86::edi, x86::edi);
    a.xor_(x86::edx, x86::edx);
    a.mov(x86::ecx, 100);
    Label loop = a.newLabel(), even = a.newLabel(), positive = a.newLabel();
    a.bind(loop);
    a.mov(x86::ebx, x86::ecx);
    a.xchg(x86::dword_ptr(kData), x86::ebx);
    a.add(x86::esi, x86::ebx);
    a.mov(x86::dword_ptr(kData + 4), x86::ecx);
    a.stc();
    a.and_(x86::dword_ptr(kData + 4), 1);
    a.jz(even);
    a.adc(x86::edi, 1);  // CF must be clear after and.
    a.bind(even);
    a.xor_(x86::dword_ptr(kData + 8), x86::ecx);
    a.mov(x86::byte_ptr(kData + 12), 0);
    a.or_(x86::byte_ptr(kData + 12), x86::cl);
    a.jns(positive);
    a.inc(x86::edx);  // cl >= 0x80: never, since ECX counts down from 100.
    a.bind(positive);
    a.dec(x86::ecx);
    a.jnz(loop);
    a.mov(x86::dword_ptr(kData + 16), x86::esi);
    a.mov(x86::dword_ptr(kData + 20), x86::edi);
    a.mov(x86::dword_ptr(kData + 24), x86::edx);
    a.mov(x86::al, 9);
    a.out(Imm(0xF4), x86::al);
  });
  const VcpuExit exit = run_from(kCode);
  ASSERT_EQ(exit.kind, VcpuExit::Kind::kDebugExit) << exit.message;
  EXPECT_EQ(exit.status, (9 << 1) | 1);
  GuestMemory& m = machine_->memory();
  EXPECT_EQ(m.read_u32(kData), 1u) << "the last value exchanged in";
  EXPECT_EQ(m.read_u32(kData + 16), 5049u) << "the values exchanged out: 0 + 100 + ... + 2";
  EXPECT_EQ(m.read_u32(kData + 20), 50u) << "odd counts, ZF and CF after and";
  EXPECT_EQ(m.read_u32(kData + 8), 100u) << "1 ^ 2 ^ ... ^ 100";
  EXPECT_EQ(m.read_u32(kData + 24), 0u) << "SF after or";
  EXPECT_GE(vcpu_->counters().adaptations, 3u);
  EXPECT_LT(vcpu_->counters().trace_faults[2], 60u);
}

// The same store hits the traced code page, then a plain data page for a
// long while (reverted to a plain store), then the code page again: with
// the threshold doubled, 12 trace faults no longer adapt it.
TEST_F(BtVcpuTest, AdaptedStoresThatStopHittingTracedPagesAreReverted) {
  constexpr uint32_t kTraced = kCode + 0x200;
  constexpr uint32_t kPlain = kCode + 0x8000;
  constexpr uint32_t kPhases = kCode + 0x300;
  GuestMemory& m = machine_->memory();
  const std::pair<uint32_t, uint32_t> phases[] = {{kTraced, 20}, {kPlain, 5000}, {kTraced, 12}};
  for (uint32_t i = 0; i < 3; ++i) {
    m.write_u32(kPhases + i * 8, phases[i].first);
    m.write_u32(kPhases + i * 8 + 4, phases[i].second);
  }
  load(kCode, [&](x86::Assembler& a) {
    a.xor_(x86::esi, x86::esi);
    Label phase = a.newLabel(), store = a.newLabel();
    a.bind(phase);
    a.mov(x86::edi, x86::dword_ptr(x86::esi, kPhases));
    a.mov(x86::ecx, x86::dword_ptr(x86::esi, kPhases + 4));
    a.bind(store);
    a.mov(x86::dword_ptr(x86::edi), x86::ecx);
    a.dec(x86::ecx);
    a.jnz(store);
    a.add(x86::esi, 8);
    a.cmp(x86::esi, 24);
    a.jb(phase);
    a.mov(x86::eax, x86::dword_ptr(kPlain));
    a.out(Imm(0xF4), x86::al);
  });
  const VcpuExit exit = run_from(kCode);
  ASSERT_EQ(exit.kind, VcpuExit::Kind::kDebugExit) << exit.message;
  EXPECT_EQ(exit.status, (1 << 1) | 1);
  EXPECT_EQ(m.read_u32(kTraced), 1u);
  EXPECT_EQ(vcpu_->counters().adaptations, 1u);
  EXPECT_EQ(vcpu_->counters().adaptations_reverted, 1u);
  ASSERT_EQ(vcpu_->adaptations().size(), 1u);
  ASSERT_TRUE(vcpu_->adaptations()[0].reverted.has_value());
  EXPECT_EQ(vcpu_->adaptations()[0].reverted->first, 4096u);
  EXPECT_EQ(vcpu_->adaptations()[0].reverted->second, 12u) << "the first window's traced stores";
  EXPECT_EQ(vcpu_->counters().trace_faults[2], 8u + 12u);
}

// memcpy()-style string copies onto a code page: rep movsd and rep movsb
// patch an instruction that runs afterwards, and an overlapping rep movsb
// copies element by element as the hardware does.
TEST_F(BtVcpuTest, StringCopiesOntoTracedPagesPatchCodeAndKeepElementOrder) {
  constexpr uint32_t kSource = kCode + 0x8000;
  constexpr uint32_t kTraced = kCode + 0x200;
  constexpr uint32_t kPatched = kCode + 0x400;
  GuestMemory& m = machine_->memory();
  for (uint32_t i = 0; i < 9; ++i) m.write_u8(kSource + i, static_cast<uint8_t>(i + 1));
  m.write_u8(kSource + 16, 0x07);  // The new immediate of "mov al, 1".
  load(kPatched, [](x86::Assembler& a) {
    a.mov(x86::al, 1);
    a.out(Imm(0xF4), x86::al);
  });
  load(kCode, [&](x86::Assembler& a) {
    a.mov(x86::esi, kSource);
    a.mov(x86::edi, kTraced);
    a.mov(x86::ecx, 2);
    a.rep().movsd();
    a.mov(x86::ecx, 1);
    a.rep().movsb();
    a.mov(x86::esi, kTraced);
    a.mov(x86::edi, kTraced + 1);
    a.mov(x86::ecx, 4);
    a.rep().movsb();
    a.mov(x86::dword_ptr(kTraced + 12), x86::ecx);
    a.mov(x86::dword_ptr(kTraced + 16), x86::edi);
    a.mov(x86::esi, kSource + 16);
    a.mov(x86::edi, kPatched + 1);
    a.movsb();
    a.mov(x86::eax, kPatched);
    a.jmp(x86::eax);
  });
  const VcpuExit exit = run_from(kCode);
  ASSERT_EQ(exit.kind, VcpuExit::Kind::kDebugExit) << exit.message;
  EXPECT_EQ(exit.status, (7 << 1) | 1) << "the patched instruction ran";
  const uint8_t expected[9] = {1, 1, 1, 1, 1, 6, 7, 8, 9};
  for (uint32_t i = 0; i < 9; ++i) EXPECT_EQ(m.read_u8(kTraced + i), expected[i]) << i;
  EXPECT_EQ(m.read_u32(kTraced + 12), 0u) << "ECX after rep";
  EXPECT_EQ(m.read_u32(kTraced + 16), kTraced + 5) << "EDI after rep";
}

// Guest ESI/EDI wrap at 0 and 4 GiB where the host's window pointers
// would not: a rep stos across either end writes the RAM on the other side
// of the wrap (the top 4 MiB of linear memory maps to RAM at 16 MiB) and
// nothing of the VMM's memory.
TEST_F(BtVcpuTest, RepStringsWrapAtZeroAndAtFourGiB) {
  constexpr uint32_t kDirectory = 0x20000;
  constexpr uint32_t kTop = 16u << 20;  // Where linear 0xFFC00000 lives.
  constexpr uint32_t kResult = kCode + 0x800;
  GuestMemory& m = machine_->memory();
  m.write_u32(kDirectory, 0x0 | 0x83);  // 4 MiB, present, writable.
  m.write_u32(kDirectory + 1023 * 4, kTop | 0x83);
  load(kCode, [&](x86::Assembler& a) {
    enable_paging(a, kDirectory);
    a.cld();
    a.mov(x86::edi, 0xFFFFFFF0u);
    a.mov(x86::ecx, 0x14);
    a.mov(x86::al, 0xA5);
    a.rep().stosb();
    a.mov(x86::dword_ptr(kResult), x86::edi);
    a.std();
    a.mov(x86::edi, 2);
    a.mov(x86::ecx, 4);
    a.mov(x86::al, 0x5A);
    a.rep().stosb();
    a.cld();
    a.mov(x86::dword_ptr(kResult + 4), x86::edi);
    a.mov(x86::dword_ptr(kResult + 8), x86::ecx);
    debug_exit(a, 1);
  });
  const VcpuExit exit = run_from(kCode);
  ASSERT_EQ(exit.kind, VcpuExit::Kind::kDebugExit) << exit.message;
  EXPECT_EQ(m.read_u32(kResult), 4u) << "EDI after the forward run";
  EXPECT_EQ(m.read_u32(kResult + 4), 0xFFFFFFFEu) << "EDI after the backward run";
  EXPECT_EQ(m.read_u32(kResult + 8), 0u) << "ECX after the backward run";
  const uint32_t top = kTop + 0x3FFFF0;  // Linear 0xFFFFFFF0.
  EXPECT_EQ(m.read_u8(top - 1), 0);
  for (uint32_t i = 0; i < 15; ++i) EXPECT_EQ(m.read_u8(top + i), 0xA5) << i;
  EXPECT_EQ(m.read_u8(top + 15), 0x5A);
  for (uint32_t i = 0; i < 3; ++i) EXPECT_EQ(m.read_u8(i), 0x5A) << i;
  EXPECT_EQ(m.read_u8(3), 0xA5);
  EXPECT_EQ(m.read_u8(4), 0);
}

TEST_F(BtVcpuTest, NoAdaptKeepsTakingTraceFaults) {
  vcpu_ = std::make_unique<BtVcpu>(*machine_,
                                   BtOptions{.translation_cache_bytes = 4u << 20, .adapt = false});
  constexpr uint32_t kData = kCode + 0x200;
  load(kCode, [&](x86::Assembler& a) {
    a.mov(x86::ecx, 100);
    Label loop = a.newLabel();
    a.bind(loop);
    a.add(x86::dword_ptr(kData), 1);
    a.dec(x86::ecx);
    a.jnz(loop);
    a.mov(x86::eax, x86::dword_ptr(kData));
    a.out(Imm(0xF4), x86::al);
  });
  const VcpuExit exit = run_from(kCode);
  ASSERT_EQ(exit.kind, VcpuExit::Kind::kDebugExit) << exit.message;
  EXPECT_EQ(exit.status, (100 << 1) | 1);
  EXPECT_EQ(vcpu_->counters().adaptations, 0u);
  EXPECT_EQ(vcpu_->counters().trace_faults[2], 100u);
}

TEST_F(BtVcpuTest, RequestStopEndsAnEndlessLoop) {
  load(kCode, [](x86::Assembler& a) {
    Label loop = a.newLabel();
    a.bind(loop);
    a.inc(x86::eax);
    a.jmp(loop);
  });
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    vcpu_->request_stop();
  });
  const VcpuExit exit = run_from(kCode);
  stopper.join();
  EXPECT_EQ(exit.kind, VcpuExit::Kind::kStopRequested) << exit.message;
}

}  // namespace
}  // namespace bt86
