#include "monitor/debugger/bt_views.h"

#include <fmt/format.h>

#include "monitor/debugger/disassembler.h"
#include "runtime/callouts.h"
#include "translator/opcode_table.h"
#include "translator/translation_mode.h"

namespace bt86 {
namespace {

std::string trace_kind_names(TraceKinds kinds) {
  std::string s;
  if (has_kind(kinds, TraceKind::kPageTable)) s += "page-table ";
  if (has_kind(kinds, TraceKind::kDescriptorTable)) s += "descriptor-table ";
  if (has_kind(kinds, TraceKind::kCode)) s += "code ";
  if (has_kind(kinds, TraceKind::kWatch)) s += "watch ";
  if (!s.empty()) s.pop_back();
  return s;
}

const char* protection_name(HostProtection p) {
  switch (p) {
    case HostProtection::kNone:
      return "none";
    case HostProtection::kRead:
      return "read-only";
    case HostProtection::kReadWrite:
      return "read-write";
  }
  return "?";
}

std::string symbol_suffix(uint32_t address, const SymbolTable& symbols) {
  const std::string name = symbols.describe(address);
  return name.empty() ? "" : " <" + name + ">";
}

std::string describe_exit(BtDebugTarget& target, const ExitRecord& e, const SymbolTable& symbols) {
  switch (e.kind) {
    case ExitKind::kDirect: {
      std::string state = "unlinked (to its stub)";
      if (e.linked_to != 0) {
        const TranslationUnit* to = target.unit_at_host(e.linked_to);
        state =
            !to ? fmt::format("linked to host {:#x}", e.linked_to)
            : to->host_start == e.linked_to
                ? fmt::format("linked to unit #{} at host {:#x}", to->id, e.linked_to)
            : to->loop_entry == e.linked_to
                ? fmt::format("linked to unit #{} past its poll load (its own loop) at host {:#x}",
                              to->id, e.linked_to)
                : fmt::format("linked to unit #{} through its entry guard at host {:#x}", to->id,
                              e.linked_to);
      }
      return fmt::format("direct -> {:#010x}{}: {}", e.guest_target,
                         symbol_suffix(e.guest_target, symbols), state);
    }
    case ExitKind::kCallout:
      return fmt::format("callout {} for the instruction at {:#010x} (returns to the dispatcher)",
                         callout_spec(e.callout).name, e.guest_target);
    case ExitKind::kException:
      return fmt::format("exception vector {} at {:#010x}", e.vector, e.guest_target);
    case ExitKind::kGuard:
      return fmt::format("entry guard of the unit at {:#010x} (taken while it is closed)",
                         e.guest_target);
  }
  return "?";
}

}  // namespace

std::string format_translation(BtDebugTarget& target, uint32_t linear, const SymbolTable& symbols) {
  const std::vector<const TranslationUnit*> units = target.units_covering(linear);
  if (units.empty()) {
    return fmt::format(
        "no live translation covers {:#010x}{} (not executed since the last flush)\n", linear,
        symbol_suffix(linear, symbols));
  }
  const Disassembler guest(Disassembler::Mode::kGuest32);
  const Disassembler guest_16(Disassembler::Mode::kGuest16);
  const Disassembler host(Disassembler::Mode::kHost64);
  const CpuState cpu = target.state();
  GuestView view(target.machine());
  std::string s;
  for (const TranslationUnit* u : units) {
    s += fmt::format(
        "unit #{} guest [{:#010x}, {:#010x}){} frame {:#x} mode {:#x}{}{}\n  host [{:#x}, {:#x}) "
        "{} bytes; {} IDENT, {} compensated, {} callout{}\n",
        u->id, u->guest_start, u->guest_end, symbol_suffix(u->guest_start, symbols), u->key.frame,
        u->key.mode,
        TranslationMode::single_instruction_of_key(u->key.mode) ? " (single-instruction)" : "",
        TranslationMode::shared_of_key(u->key.mode) ? " (any FPU mode, unrouted FS/GS flat or not)"
                                                    : "",
        u->host_start, u->host_start + u->host_size, u->host_size, u->ident_count,
        u->compensated_count, u->callout_count, u->global ? ", global" : "");
    if (u->execution_counter != nullptr)
      s += fmt::format("  entered {} times\n", *u->execution_counter);
    for (const InstructionMap& m : u->instructions) {
      std::vector<uint8_t> bytes(m.guest_length);
      std::string guest_text = "(guest bytes not readable)";
      if (view.read_linear(cpu, m.guest_eip, bytes)) {
        const auto lines =
            (u->key.code_segment.code_16 ? guest_16 : guest).disassemble(bytes, m.guest_eip, 1);
        if (!lines.empty()) guest_text = fmt::format("{:<24} {}", lines[0].bytes, lines[0].text);
      }
      s += fmt::format("  {:#010x}  {:<11}  {}\n", m.guest_eip, translation_kind_name(m.kind),
                       guest_text);
      if (m.host_end > m.host_begin) {
        const auto* code = reinterpret_cast<const uint8_t*>(u->host_start + m.host_begin);
        for (const auto& line : host.disassemble({code, m.host_end - m.host_begin},
                                                 u->host_start + m.host_begin, 64)) {
          s += fmt::format("      host {:#x}: {:<30} {}\n", line.address, line.bytes, line.text);
        }
      } else {
        s += "      (no host code: the unit's exit handles it)\n";
      }
    }
    if (u->exits.empty())
      s += "  exits: none of its own (indirect lookup or fall into the cache)\n";
    for (uint32_t id : u->exits) {
      s += fmt::format("  exit #{}: {}\n", id,
                       describe_exit(target, target.exit_record(id), symbols));
    }
    if (!u->incoming_links.empty()) {
      s += fmt::format("  {} incoming chained jump(s)\n", u->incoming_links.size());
    }
  }
  return s;
}

std::string format_unit_list(BtDebugTarget& target, std::string_view filter,
                             const SymbolTable& symbols) {
  std::string s;
  size_t shown = 0;
  const auto units = target.live_units();
  for (const TranslationUnit* u : units) {
    const std::string name = symbols.describe(u->guest_start);
    const std::string eip = fmt::format("{:#010x}", u->guest_start);
    if (!filter.empty() && name.find(filter) == std::string::npos &&
        eip.find(filter) == std::string::npos) {
      continue;
    }
    ++shown;
    s += fmt::format("#{:<5} {} {:<28} {:>3} insns ({}/{}/{} I/C/X) host {:#x}+{}{}\n", u->id, eip,
                     name, u->instructions.size(), u->ident_count, u->compensated_count,
                     u->callout_count, u->host_start, u->host_size,
                     TranslationMode::single_instruction_of_key(u->key.mode) ? " single" : "");
  }
  s += fmt::format("{} of {} live units, {} cache flushes\n", shown, units.size(),
                   target.flush_count());
  return s;
}

std::string format_traces(BtDebugTarget& target) {
  std::string s;
  const auto frames = target.traced_frames();
  for (const auto& f : frames) {
    s += fmt::format("frame {:#010x}  {:<32} {} trace fault(s)\n", f.frame << 12,
                     trace_kind_names(f.kinds), f.faults);
  }
  s += fmt::format("{} traced page(s)\n", frames.size());
  return s;
}

std::string format_spaces(BtDebugTarget& target) {
  std::string s;
  const ShadowAddressSpace* current = target.current_space();
  for (const ShadowAddressSpace* space : target.spaces()) {
    const ShadowSpaceKey& k = space->key();
    s += fmt::format(
        "{} {}: {} supervisor page(s), {} user page(s){}\n", space == current ? "*" : " ",
        k.identity ? std::string("identity (paging off)")
                   : fmt::format("cr3 frame {:#010x}{}{}", k.cr3_frame << 12, k.pse ? " PSE" : "",
                                 k.wp ? " WP" : ""),
        space->mappings(WindowKind::kSupervisor).size(), space->mappings(WindowKind::kUser).size(),
        space == current ? " (current)" : "");
  }
  if (s.empty()) s = "no cached address spaces (the guest has not run yet)\n";
  return s;
}

std::string format_adaptations(BtDebugTarget& target, const SymbolTable& symbols) {
  if (!target.adaptation_enabled()) {
    return "adaptive retranslation is off (--no-adapt): trace-faulting stores keep faulting\n";
  }
  const Disassembler guest(Disassembler::Mode::kGuest32);
  std::string s;
  int n = 0;
  for (const BtAdaptation& a : target.adaptations()) {
    const auto lines = guest.disassemble(a.bytes, a.eip, 1);
    const std::string text = lines.empty() ? "(bad)" : lines[0].text;
    s += fmt::format("#{} eip 0x{:08x}{}: {}\n", ++n, a.eip, symbol_suffix(a.eip, symbols), text);
    s += fmt::format("   {} trace faults ({} frame): retranslated as a traced-store callout ({})\n",
                     a.trace_faults, trace_kind_names(a.kinds),
                     a.software_store ? fmt::format("the {} stores through guest linear memory",
                                                    text.substr(0, text.find(' ')))
                                      : "runs singly with its page opened");
    std::string old_units;
    for (uint32_t id : a.old_units) old_units += fmt::format(" #{}", id);
    s += fmt::format(
        "   old unit{} -> new unit {}\n", old_units.empty() ? " none" : old_units,
        a.new_unit ? fmt::format("#{}", *a.new_unit) : std::string("(not translated since)"));
    if (a.reverted) {
      s += fmt::format(
          "   reverted to a plain store: {} of its last {} callouts hit a traced page\n",
          a.reverted->second, a.reverted->first);
    }
  }
  s += fmt::format("{} adaptation(s), threshold {} trace faults per instruction\n", n,
                   target.adaptation_threshold());
  return s;
}

std::string format_page_walk(const GuestView& view, const CpuState& cpu, uint32_t linear,
                             BtDebugTarget* bt) {
  std::string s;
  if (!(cpu.cr0 & cr0::kPg)) {
    s += fmt::format("paging is off: linear {:#010x} is physical {:#010x}\n", linear, linear);
  } else {
    const uint32_t pde_address = (cpu.cr3 & ~0xFFFu) + (linear >> 22) * 4;
    uint32_t pde = 0;
    view.read_physical(pde_address, {reinterpret_cast<uint8_t*>(&pde), 4});
    const auto flags = [](uint32_t e, bool directory) {
      std::string f;
      f += (e & pte::kPresent) ? "P " : "-p ";
      f += (e & pte::kWritable) ? "W " : "R ";
      f += (e & pte::kUser) ? "U " : "S ";
      if (e & pte::kAccessed) f += "A ";
      if (e & pte::kDirty) f += "D ";
      if (directory && (e & pte::kPageSize)) f += "PS ";
      if (e & pte::kGlobal) f += "G ";
      f.pop_back();
      return f;
    };
    s += fmt::format("cr3 {:#010x}\nPDE[{}] at {:#010x} = {:#010x} [{}]\n", cpu.cr3, linear >> 22,
                     pde_address, pde, flags(pde, true));
    if ((pde & pte::kPresent) && !((pde & pte::kPageSize) && (cpu.cr4 & cr4::kPse))) {
      const uint32_t pte_address = (pde & ~0xFFFu) + ((linear >> 12) & 0x3FF) * 4;
      uint32_t entry = 0;
      view.read_physical(pte_address, {reinterpret_cast<uint8_t*>(&entry), 4});
      s += fmt::format("PTE[{}] at {:#010x} = {:#010x} [{}]\n", (linear >> 12) & 0x3FF, pte_address,
                       entry, flags(entry, false));
    } else if (pde & pte::kPresent) {
      s += "4 MiB page\n";
    }
    const PageWalkResult r = view.walk(cpu, linear);
    if (r.ok()) {
      s += fmt::format("linear {:#010x} -> physical {:#010x} ({} KiB page, {}{}{})\n", linear,
                       r.translation->physical, r.translation->page_size / 1024,
                       r.translation->writable ? "writable" : "read-only",
                       r.translation->user ? ", user" : ", supervisor",
                       r.translation->global ? ", global" : "");
    } else {
      s += fmt::format("linear {:#010x} does not translate: #PF error code {:#x}\n", linear,
                       r.error_code);
    }
  }
  if (bt == nullptr) return s;
  const ShadowAddressSpace* space = bt->current_space();
  if (space == nullptr) return s + "shadow: no address space is active yet\n";
  for (WindowKind w : {WindowKind::kSupervisor, WindowKind::kUser}) {
    const auto& mappings = space->mappings(w);
    auto it = mappings.find(linear >> 12);
    const char* name = w == WindowKind::kSupervisor ? "supervisor" : "user";
    if (it == mappings.end()) {
      s += fmt::format("shadow {} window: not mapped (the next touch is a hidden page fault)\n",
                       name);
    } else if (it->second.frame == ShadowAddressSpace::kUnassignedFrame) {
      s += fmt::format("shadow {} window: the unassigned (zero) page, {}\n", name,
                       protection_name(it->second.prot));
    } else {
      s += fmt::format("shadow {} window: frame {:#010x} {}\n", name, it->second.frame << 12,
                       protection_name(it->second.prot));
    }
  }
  const std::optional<uint32_t> physical = view.physical_of(cpu, linear);
  if (physical) {
    TraceKinds kinds = 0;
    for (const auto& f : bt->traced_frames()) {
      if (f.frame == *physical >> 12) kinds = f.kinds;
    }
    s += kinds ? fmt::format("frame {:#010x} is traced: {}\n", *physical & ~0xFFFu,
                             trace_kind_names(kinds))
               : fmt::format("frame {:#010x} is not traced\n", *physical & ~0xFFFu);
  }
  return s;
}

}  // namespace bt86
