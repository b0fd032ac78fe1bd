#include "monitor/debugger/guest_view.h"

#include <fmt/format.h>

#include "shadow/descriptor.h"

namespace bt86 {
namespace {

constexpr uint32_t kPage = 4096;
constexpr const char* kGprNames[] = {"eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"};
constexpr const char* kSegNames[] = {"es", "cs", "ss", "ds", "fs", "gs"};

std::optional<PagingMode> paging_of(const CpuState& cpu) {
  if (!(cpu.cr0 & cr0::kPg)) return std::nullopt;
  return PagingMode{cpu.cr3, (cpu.cr4 & cr4::kPse) != 0, (cpu.cr4 & cr4::kPge) != 0,
                    (cpu.cr0 & cr0::kWp) != 0};
}

std::string with_symbol(uint32_t address, const SymbolTable& symbols) {
  const std::string name = symbols.describe(address);
  return name.empty() ? fmt::format("{:#010x}", address)
                      : fmt::format("{:#010x} <{}>", address, name);
}

std::string segment_type(const Segment& s) {
  if (!s.s) {
    switch (s.type) {
      case descriptor_type::kTss16Available:
        return "tss16";
      case descriptor_type::kLdt:
        return "ldt";
      case descriptor_type::kTss16Busy:
        return "tss16-busy";
      case descriptor_type::kCallGate16:
        return "call-gate16";
      case descriptor_type::kTaskGate:
        return "task-gate";
      case descriptor_type::kInterruptGate16:
        return "int-gate16";
      case descriptor_type::kTrapGate16:
        return "trap-gate16";
      case descriptor_type::kTss32Available:
        return "tss32";
      case descriptor_type::kTss32Busy:
        return "tss32-busy";
      case descriptor_type::kCallGate32:
        return "call-gate32";
      case descriptor_type::kInterruptGate32:
        return "int-gate32";
      case descriptor_type::kTrapGate32:
        return "trap-gate32";
      default:
        return fmt::format("system-{}", s.type);
    }
  }
  std::string t = (s.type & descriptor_type::kCode) ? "code" : "data";
  if (s.type & descriptor_type::kCode) {
    t += (s.type & descriptor_type::kReadable) ? " r-x" : " --x";
    if (s.type & descriptor_type::kConforming) t += " conforming";
  } else {
    t += (s.type & descriptor_type::kWritable) ? " rw-" : " r--";
    if (s.type & descriptor_type::kExpandDown) t += " expand-down";
  }
  if (s.type & descriptor_type::kAccessed) t += " accessed";
  return t;
}

}  // namespace

PageWalkResult GuestView::walk(const CpuState& cpu, uint32_t linear) const {
  const std::optional<PagingMode> mode = paging_of(cpu);
  if (!mode) {
    PageWalkResult r;
    r.translation = PageTranslation{.physical = linear,
                                    .page_linear = linear & ~(kPage - 1),
                                    .page_physical = linear & ~(kPage - 1),
                                    .page_size = kPage,
                                    .writable = true,
                                    .pte_address = std::nullopt};
    return r;
  }
  return walker_.probe(*mode, linear, {AccessType::kRead, false});
}

std::optional<uint32_t> GuestView::physical_of(const CpuState& cpu, uint32_t linear) const {
  const PageWalkResult r = walk(cpu, linear);
  if (!r.ok()) return std::nullopt;
  return r.translation->physical;
}

bool GuestView::pieces(const CpuState& cpu, uint32_t linear, uint32_t length,
                       std::vector<std::pair<uint32_t, uint32_t>>* out) const {
  for (uint32_t done = 0; done < length;) {
    const uint32_t at = linear + done;
    const uint32_t piece = std::min(length - done, kPage - (at & (kPage - 1)));
    const std::optional<uint32_t> physical = physical_of(cpu, at);
    if (!physical || !machine_.memory().contains(*physical, piece)) return false;
    out->emplace_back(*physical, piece);
    done += piece;
  }
  return true;
}

bool GuestView::read_linear(const CpuState& cpu, uint32_t linear, std::span<uint8_t> out) const {
  std::vector<std::pair<uint32_t, uint32_t>> parts;
  if (!pieces(cpu, linear, static_cast<uint32_t>(out.size()), &parts)) return false;
  size_t done = 0;
  for (const auto& [physical, length] : parts) {
    machine_.memory().read(physical, out.subspan(done, length));
    done += length;
  }
  return true;
}

bool GuestView::read_physical(uint32_t physical, std::span<uint8_t> out) const {
  if (!machine_.memory().contains(physical, out.size())) return false;
  machine_.memory().read(physical, out);
  return true;
}

std::string format_eflags(uint32_t f) {
  static constexpr std::pair<uint32_t, const char*> kBits[] = {
      {eflags::kCf, "CF"}, {eflags::kPf, "PF"}, {eflags::kAf, "AF"}, {eflags::kZf, "ZF"},
      {eflags::kSf, "SF"}, {eflags::kTf, "TF"}, {eflags::kIf, "IF"}, {eflags::kDf, "DF"},
      {eflags::kOf, "OF"}, {eflags::kNt, "NT"}, {eflags::kRf, "RF"}, {eflags::kVm, "VM"},
      {eflags::kAc, "AC"}, {eflags::kId, "ID"}};
  std::string s;
  for (const auto& [bit, name] : kBits) {
    if (f & bit) s += fmt::format("{} ", name);
  }
  return s + fmt::format("IOPL={}", (f & eflags::kIoplMask) >> 12);
}

std::string format_segment(std::string_view name, const Segment& s) {
  if (s.unusable) return fmt::format("{:<4} {:#06x} unusable", name, s.selector);
  return fmt::format("{:<4} {:#06x} base={:#010x} limit={:#010x} {} dpl={}{}{}{}", name, s.selector,
                     s.base, s.limit, segment_type(s), s.dpl,
                     s.present ? " present" : " not-present",
                     !s.s   ? ""
                     : s.db ? " 32-bit"
                            : " 16-bit",
                     s.granularity ? " G" : "");
}

std::string format_registers(const CpuState& cpu, const SymbolTable& symbols) {
  std::string s;
  for (int i = 0; i < kNumGprs; ++i) {
    s += fmt::format("{}={:#010x}{}", kGprNames[i], cpu.gpr[i], i % 4 == 3 ? "\n" : "  ");
  }
  s += fmt::format("eip={}\n", with_symbol(cpu.eip, symbols));
  s += fmt::format("eflags={:#010x} [{}]\n", cpu.eflags, format_eflags(cpu.eflags));
  for (int i = 0; i < kNumSegRegs; ++i) s += format_segment(kSegNames[i], cpu.seg[i]) + "\n";
  s += format_segment("ldtr", cpu.ldtr) + "\n";
  s += format_segment("tr", cpu.tr) + "\n";
  s += fmt::format("gdtr base={:#010x} limit={:#06x}\n", cpu.gdtr.base, cpu.gdtr.limit);
  s += fmt::format("idtr base={:#010x} limit={:#06x}\n", cpu.idtr.base, cpu.idtr.limit);
  std::string cr0_bits;
  static constexpr std::pair<uint32_t, const char*> kCr0[] = {
      {cr0::kPe, "PE"}, {cr0::kMp, "MP"}, {cr0::kEm, "EM"}, {cr0::kTs, "TS"},
      {cr0::kEt, "ET"}, {cr0::kNe, "NE"}, {cr0::kWp, "WP"}, {cr0::kAm, "AM"},
      {cr0::kNw, "NW"}, {cr0::kCd, "CD"}, {cr0::kPg, "PG"}};
  for (const auto& [bit, name] : kCr0) {
    if (cpu.cr0 & bit) cr0_bits += fmt::format(" {}", name);
  }
  std::string cr4_bits;
  static constexpr std::pair<uint32_t, const char*> kCr4[] = {
      {cr4::kVme, "VME"}, {cr4::kPvi, "PVI"},       {cr4::kTsd, "TSD"},
      {cr4::kDe, "DE"},   {cr4::kPse, "PSE"},       {cr4::kPae, "PAE"},
      {cr4::kPge, "PGE"}, {cr4::kOsfxsr, "OSFXSR"}, {cr4::kOsxmmexcpt, "OSXMMEXCPT"}};
  for (const auto& [bit, name] : kCr4) {
    if (cpu.cr4 & bit) cr4_bits += fmt::format(" {}", name);
  }
  s += fmt::format("cr0={:#010x} [{} ]  cr2={:#010x}  cr3={:#010x}  cr4={:#010x} [{} ]\n", cpu.cr0,
                   cr0_bits, cpu.cr2, cpu.cr3, cpu.cr4, cr4_bits);
  s += fmt::format("cpl={}\n", cpu.cpl());
  return s;
}

std::string format_descriptor_table(const GuestView& view, const CpuState& cpu,
                                    DescriptorTable table, const SymbolTable& symbols) {
  uint32_t base = 0;
  uint32_t limit = 0;
  const char* name = "gdt";
  switch (table) {
    case DescriptorTable::kGdt:
      base = cpu.gdtr.base;
      limit = cpu.gdtr.limit;
      break;
    case DescriptorTable::kIdt:
      base = cpu.idtr.base;
      limit = cpu.idtr.limit;
      name = "idt";
      break;
    case DescriptorTable::kLdt:
      if (cpu.ldtr.unusable || cpu.ldtr.selector == 0) return "ldt: none loaded (LDTR is null)\n";
      base = cpu.ldtr.base;
      limit = cpu.ldtr.limit;
      name = "ldt";
      break;
  }
  std::string s = fmt::format("{} base={:#010x} limit={:#x} ({} entries)\n", name, base, limit,
                              (uint64_t{limit} + 1) / 8);
  int shown = 0;
  for (uint32_t offset = 0; offset + 7 <= limit; offset += 8) {
    uint64_t raw = 0;
    if (!view.read_linear(cpu, base + offset, {reinterpret_cast<uint8_t*>(&raw), 8})) {
      s += fmt::format("  [{:#06x}] not readable at linear {:#010x}\n", offset, base + offset);
      break;
    }
    if (raw == 0) continue;
    ++shown;
    if (table == DescriptorTable::kIdt) {
      const GateDescriptor g = decode_gate_descriptor(raw);
      Segment as_segment;
      as_segment.type = g.type;
      s += fmt::format("  vector {:#04x}: {} {:#06x}:{} dpl={}{}\n", offset / 8,
                       segment_type(as_segment), g.selector, with_symbol(g.offset, symbols), g.dpl,
                       g.present ? "" : " not-present");
      continue;
    }
    const uint16_t selector =
        static_cast<uint16_t>(offset | (table == DescriptorTable::kLdt ? 4 : 0));
    const Segment seg = decode_segment_descriptor(raw, selector);
    if (!seg.s &&
        (seg.type == descriptor_type::kCallGate32 || seg.type == descriptor_type::kCallGate16 ||
         seg.type == descriptor_type::kTaskGate)) {
      const GateDescriptor g = decode_gate_descriptor(raw);
      s += fmt::format("  {:#06x}: {} {:#06x}:{:#010x} dpl={} params={}\n", selector,
                       segment_type(seg), g.selector, g.offset, g.dpl, g.parameter_count);
      continue;
    }
    s += "  " + format_segment("", seg) + "\n";
  }
  if (shown == 0) s += "  (no non-zero entries)\n";
  return s;
}

std::string format_devices(const Machine& machine) {
  std::string s;
  for (int slave = 0; slave < 2; ++slave) {
    const Pic8259::ChipRegisters r = machine.pic().registers(slave != 0);
    s += fmt::format(
        "pic {}: irr={:#04x} isr={:#04x} imr={:#04x} vector-base={:#04x} elcr={:#04x}\n",
        slave ? "slave " : "master", r.irr, r.isr, r.imr, r.vector_base, r.elcr);
  }
  s += fmt::format("pic: INTR {}\n", machine.pic().interrupt_pending() ? "raised" : "low");
  for (unsigned ch = 0; ch < 3; ++ch) {
    s += fmt::format("pit channel {}: gate={} out={}\n", ch, machine.pit().gate(ch) ? 1 : 0,
                     machine.pit().output(ch) ? 1 : 0);
  }
  s += fmt::format("uart com1: divisor={} rx-space={}\n", machine.uart().divisor(),
                   machine.uart().rx_space());
  s += fmt::format("rtc: guest time {} s since 1970, nmi {}\n",
                   machine.rtc().guest_unix_ns() / 1'000'000'000,
                   machine.rtc().nmi_disabled() ? "disabled" : "enabled");
  return s;
}

std::string format_events(const CpuState& cpu, const Machine& machine) {
  const PendingEvents& e = cpu.events;
  std::string s;
  if (e.exception) {
    s += fmt::format(
        "pending exception: vector {}{}\n", e.exception->vector,
        e.exception->error_code ? fmt::format(" error code {:#x}", *e.exception->error_code) : "");
  }
  if (e.interrupt) s += fmt::format("acknowledged interrupt: vector {:#04x}\n", *e.interrupt);
  if (e.nmi) s += "pending NMI\n";
  if (e.interrupt_shadow) s += "interrupt shadow (sti / mov ss)\n";
  if (e.halted) s += "halted\n";
  const Pic8259::ChipRegisters m = machine.pic().registers(false);
  const Pic8259::ChipRegisters sl = machine.pic().registers(true);
  s += fmt::format("pic requests: irr master={:#04x} slave={:#04x}, INTR {}, guest IF {}\n", m.irr,
                   sl.irr, machine.pic().interrupt_pending() ? "raised" : "low",
                   (cpu.eflags & eflags::kIf) ? "set" : "clear");
  return s;
}

}  // namespace bt86
