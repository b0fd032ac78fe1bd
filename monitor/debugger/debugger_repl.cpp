#include "monitor/debugger/debugger_repl.h"

#include <histedit.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <sstream>

#include <fmt/format.h>

#include "monitor/debugger/bt_views.h"
#include "monitor/debugger/disassembler.h"

namespace bt86 {
namespace {

constexpr const char* kGprNames[] = {"eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"};

std::vector<std::string> split_words(std::string_view line) {
  std::vector<std::string> words;
  std::istringstream in{std::string(line)};
  std::string w;
  while (in >> w) words.push_back(w);
  return words;
}

std::optional<uint64_t> parse_number(std::string_view text) {
  if (text.empty()) return std::nullopt;
  const std::string s(text);
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(s.c_str(), &end, 0);
  if (errno != 0 || *end != '\0' || s[0] == '-') return std::nullopt;
  return v;
}

std::string exit_description(const VcpuExit& exit) {
  switch (exit.kind) {
    case VcpuExit::Kind::kDebugExit:
      return fmt::format("the guest wrote {} to the debug-exit port (exit status {})",
                         exit.status >> 1, exit.status);
    case VcpuExit::Kind::kReset:
      return "the guest reset the machine";
    case VcpuExit::Kind::kPowerOff:
      return "the guest powered off";
    case VcpuExit::Kind::kTripleFault:
      return "the guest crashed (triple fault): " + exit.message;
    case VcpuExit::Kind::kStopRequested:
      return "the run was stopped: " + exit.message;
    case VcpuExit::Kind::kError:
      return "the backend cannot continue: " + exit.message;
  }
  return exit.message;
}

// Code addresses (EIP, breakpoints, disas) are offsets into CS.
uint32_t code_linear(const CpuState& cpu, uint32_t offset) {
  return cpu.segment(SegReg::kCs).base + offset;
}

// Guest code as the CPU decodes it now: 16-bit in a code segment with D clear.
Disassembler::Mode guest_mode(const CpuState& cpu) {
  return Disassembler::guest_mode(!cpu.segment(SegReg::kCs).db);
}

}  // namespace

DebuggerRepl::DebuggerRepl(DebugTarget& target, const SymbolTable& symbols, std::FILE* out,
                           InterruptWatcher& ctrl_c)
    : target_(target), symbols_(symbols), out_(out), ctrl_c_(ctrl_c), view_(target.machine()) {}

const std::vector<DebuggerRepl::Command>& DebuggerRepl::command_table() {
  static const std::vector<Command> table = {
      {"help", "help [COMMAND]", "list the commands, or explain one", &DebuggerRepl::cmd_help},
      {"step", "step [N]", "run N guest instructions (default 1)", &DebuggerRepl::cmd_step},
      {"next", "next", "run one instruction, stepping over a call", &DebuggerRepl::cmd_next},
      {"continue", "continue", "run until a breakpoint, a watchpoint, Ctrl-C or the guest's end",
       &DebuggerRepl::cmd_continue},
      {"until", "until ADDR", "run until EIP reaches ADDR (or another stop)",
       &DebuggerRepl::cmd_until},
      {"break", "break ADDR|SYMBOL", "stop before executing the instruction at ADDR",
       &DebuggerRepl::cmd_break},
      {"delete", "delete [N]", "delete breakpoint or watchpoint N (default: all)",
       &DebuggerRepl::cmd_delete},
      {"info", "info breakpoints", "list breakpoints and watchpoints", &DebuggerRepl::cmd_info},
      {"watch", "watch ADDR [LEN]",
       "stop after a store changes any of LEN bytes (default 4) at linear ADDR (BT: through "
       "page tracing)",
       &DebuggerRepl::cmd_watch},
      {"regs", "regs",
       "general registers, EIP, decoded EFLAGS, segments with hidden parts, CR0-CR4, GDTR/IDTR/"
       "LDTR/TR",
       &DebuggerRepl::cmd_regs},
      {"x", "x/NF ADDR",
       "examine N units of guest memory at linear ADDR (p:ADDR: physical); F is x (hex), i "
       "(instructions) or s (string), with a size b, h or w (x/8xb, x/4xw)",
       &DebuggerRepl::cmd_examine},
      {"disas", "disas [ADDR] [N]",
       "disassemble N guest instructions at CS:ADDR (default: 10 at EIP)",
       &DebuggerRepl::cmd_disas},
      {"gdt", "gdt", "the guest's GDT decoded", &DebuggerRepl::cmd_gdt},
      {"idt", "idt", "the guest's IDT decoded", &DebuggerRepl::cmd_idt},
      {"ldt", "ldt", "the guest's LDT decoded", &DebuggerRepl::cmd_ldt},
      {"devices", "devices", "PIC, PIT, UART and RTC state", &DebuggerRepl::cmd_devices},
      {"events", "events", "pending interrupts and exceptions", &DebuggerRepl::cmd_events},
      {"translate", "translate ADDR",
       "BT: the unit covering ADDR: each guest instruction with its kind (IDENT, compensated, "
       "callout) and its host code, host ranges, the chaining state of its exits",
       &DebuggerRepl::cmd_translate},
      {"tc", "tc stats | tc list [FILTER] | tc flush",
       "BT: translation-cache statistics, the live units (FILTER: symbol or EIP text), or flush "
       "the cache",
       &DebuggerRepl::cmd_tc},
      {"adapt", "adapt", "BT: the adaptation log (adaptive retranslation of trace-faulting code)",
       &DebuggerRepl::cmd_adapt},
      {"traces", "traces", "BT: traced pages by kind with their trace-fault counts",
       &DebuggerRepl::cmd_traces},
      {"pt", "pt LINEAR",
       "walk the guest page tables for LINEAR (PDE, PTE, flags); BT: the shadow side too",
       &DebuggerRepl::cmd_pt},
      {"spaces", "spaces", "BT: the shadow MMU's cached address spaces", &DebuggerRepl::cmd_spaces},
      {"quit", "quit", "end the session", &DebuggerRepl::cmd_quit},
  };
  return table;
}

std::vector<std::string> DebuggerRepl::complete_command(std::string_view prefix) const {
  std::vector<std::string> names;
  for (const Command& c : command_table()) {
    if (c.name.starts_with(prefix)) names.push_back(c.name);
  }
  return names;
}

void DebuggerRepl::print(std::string_view text) {
  std::fwrite(text.data(), 1, text.size(), out_);
  std::fflush(out_);
}

bool DebuggerRepl::execute(std::string_view line) {
  const size_t hash = line.find('#');
  if (hash != std::string_view::npos) line = line.substr(0, hash);
  Args words = split_words(line);
  if (words.empty()) return !quit_;
  // x/NF: the format rides on the command word.
  if (words[0].size() > 1 && words[0][0] == 'x' && words[0][1] == '/') {
    words.push_back(std::string());
    std::rotate(words.begin() + 1, words.end() - 1, words.end());
    words[1].swap(words[0]);
    words[0].push_back('x');
    words[1].erase(0, 1);
  }
  const std::string name = words[0];
  const Command* match = nullptr;
  std::vector<const Command*> prefixed;
  for (const Command& c : command_table()) {
    if (c.name == name) match = &c;
    if (c.name.starts_with(name)) prefixed.push_back(&c);
  }
  // Unique prefixes work as in gdb (c, s, b, ...), with gdb's favourites.
  static const std::map<std::string, std::string> kAliases = {
      {"s", "step"},  {"n", "next"},     {"c", "continue"}, {"b", "break"}, {"q", "quit"},
      {"si", "step"}, {"stepi", "step"}, {"i", "info"},     {"d", "delete"}};
  if (match == nullptr) {
    if (auto a = kAliases.find(name); a != kAliases.end()) {
      for (const Command& c : command_table()) {
        if (c.name == a->second) match = &c;
      }
    } else if (prefixed.size() == 1) {
      match = prefixed[0];
    }
  }
  if (match == nullptr) {
    print(fmt::format("unknown command '{}'{}; 'help' lists the commands\n", name,
                      prefixed.size() > 1 ? " (ambiguous)" : ""));
    return true;
  }
  words.erase(words.begin());
  (this->*match->run)(words);
  return !quit_;
}

void DebuggerRepl::run_lines(std::FILE* in, bool echo) {
  char* buffer = nullptr;
  size_t capacity = 0;
  ssize_t n;
  while ((n = getline(&buffer, &capacity, in)) >= 0) {
    std::string_view line(buffer, static_cast<size_t>(n));
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
    if (echo) print(fmt::format("(bt86) {}\n", line));
    if (!execute(line)) break;
  }
  std::free(buffer);
}

namespace {

const char* prompt(EditLine*) {
  return "(bt86) ";
}

// Tab: complete the command name (first word) or a symbol (later words).
unsigned char complete(EditLine* el, int) {
  void* data = nullptr;
  el_get(el, EL_CLIENTDATA, &data);
  const auto* repl = static_cast<const DebuggerRepl*>(data);
  const LineInfo* info = el_line(el);
  const std::string_view before(info->buffer, static_cast<size_t>(info->cursor - info->buffer));
  const size_t start = before.find_last_of(" \t");
  const std::string_view word = start == std::string_view::npos ? before : before.substr(start + 1);
  const bool first = before.find_first_not_of(" \t") == std::string_view::npos ||
                     start == std::string_view::npos ||
                     before.substr(0, start).find_first_not_of(" \t") == std::string_view::npos;
  const std::vector<std::string> matches =
      first ? repl->complete_command(word) : repl->symbols().names_with_prefix(word);
  if (matches.empty()) return CC_ERROR;
  // The longest common prefix of all matches.
  std::string common = matches[0];
  for (const std::string& m : matches) {
    size_t i = 0;
    while (i < common.size() && i < m.size() && common[i] == m[i]) ++i;
    common.resize(i);
  }
  std::string insert = common.substr(word.size());
  if (matches.size() == 1) insert += ' ';
  if (!insert.empty()) {
    el_insertstr(el, insert.c_str());
    return CC_REFRESH;
  }
  std::string list = "\n";
  for (size_t i = 0; i < matches.size() && i < 200; ++i) list += matches[i] + "  ";
  std::fprintf(stdout, "%s\n", list.c_str());
  return CC_REDISPLAY;
}

}  // namespace

void DebuggerRepl::run_interactive() {
  EditLine* el = el_init("bt86", stdin, stdout, stderr);
  History* history_state = history_init();
  HistEvent event;
  history(history_state, &event, H_SETSIZE, 1000);
  el_set(el, EL_CLIENTDATA, this);
  el_set(el, EL_PROMPT, &prompt);
  el_set(el, EL_EDITOR, "emacs");
  el_set(el, EL_HIST, history, history_state);
  el_set(el, EL_ADDFN, "bt86-complete", "complete a command or symbol", &complete);
  el_set(el, EL_BIND, "^I", "bt86-complete", nullptr);
  for (;;) {
    int count = 0;
    const char* line = el_gets(el, &count);
    if (line == nullptr) {
      print("\n");
      break;
    }
    std::string text(line, static_cast<size_t>(count));
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    if (text.find_first_not_of(" \t") != std::string::npos) {
      history(history_state, &event, H_ENTER, text.c_str());
    }
    if (!execute(text)) break;
  }
  history_end(history_state);
  el_end(el);
}

std::optional<uint32_t> DebuggerRepl::parse_address(std::string_view text) {
  std::string_view base = text;
  uint64_t offset = 0;
  const size_t plus = text.find('+', 1);
  if (plus != std::string_view::npos) {
    const std::optional<uint64_t> o = parse_number(text.substr(plus + 1));
    if (!o) {
      print(fmt::format("bad offset in '{}'\n", text));
      return std::nullopt;
    }
    offset = *o;
    base = text.substr(0, plus);
  }
  std::optional<uint64_t> value = parse_number(base);
  if (!value && base.starts_with('$')) {
    const CpuState cpu = target_.state();
    const std::string_view reg = base.substr(1);
    if (reg == "eip" || reg == "pc") value = cpu.eip;
    for (int i = 0; i < kNumGprs; ++i) {
      if (reg == kGprNames[i]) value = cpu.gpr[i];
    }
    if (reg == "sp") value = cpu.reg(Gpr::kEsp);
  }
  if (!value) {
    if (std::optional<uint32_t> s = symbols_.address_of(base)) value = *s;
  }
  if (!value || *value + offset > 0xFFFFFFFFull) {
    print(fmt::format("'{}' is not an address, a known symbol or a register ($eip, $esp, ...)\n",
                      text));
    return std::nullopt;
  }
  return static_cast<uint32_t>(*value + offset);
}

bool DebuggerRepl::require_bt(std::string_view command) {
  if (target_.bt() != nullptr) return true;
  print(fmt::format("'{}' is only available under the bt backend (this is {})\n", command,
                    target_.backend_name()));
  return false;
}

bool DebuggerRepl::require_running() {
  if (!exit_) return true;
  print(fmt::format("the guest has ended ({}); it cannot run again\n", exit_description(*exit_)));
  return false;
}

void DebuggerRepl::show_location() {
  const CpuState cpu = target_.state();
  uint8_t bytes[16];
  std::string text = "(not readable)";
  if (view_.read_linear(cpu, code_linear(cpu, cpu.eip), bytes)) {
    const auto lines = Disassembler(guest_mode(cpu)).disassemble(bytes, cpu.eip, 1);
    if (!lines.empty()) text = lines[0].text;
  }
  const std::string name = symbols_.describe(cpu.eip);
  print(fmt::format("=> {:#010x}{}: {}\n", cpu.eip, name.empty() ? "" : " <" + name + ">", text));
}

DebugStop DebuggerRepl::run_guest(bool step) {
  ctrl_c_.arm([this] { target_.interrupt(); });
  const DebugStop stop = step ? target_.step() : target_.resume();
  ctrl_c_.disarm();
  return stop;
}

void DebuggerRepl::report_stop(const DebugStop& stop) {
  switch (stop.kind) {
    case DebugStop::Kind::kStep:
      break;
    case DebugStop::Kind::kBreakpoint: {
      const uint32_t eip = target_.state().eip;
      int number = 0;
      for (const auto& [n, at] : breakpoints_) {
        if (at == eip) number = n;
      }
      print(number ? fmt::format("breakpoint {} hit\n", number) : "stopped\n");
      break;
    }
    case DebugStop::Kind::kWatchpoint:
      print(fmt::format("watchpoint: a store changed {:#010x}\n", stop.address));
      break;
    case DebugStop::Kind::kInterrupted:
      print("interrupted\n");
      break;
    case DebugStop::Kind::kExited:
      exit_ = stop.exit;
      print(exit_description(stop.exit) + "\n");
      return;
  }
  show_location();
}

void DebuggerRepl::cmd_help(const Args& args) {
  if (!args.empty()) {
    for (const Command& c : command_table()) {
      if (c.name == args[0]) {
        print(fmt::format("{}\n  {}\n", c.usage, c.help));
        return;
      }
    }
    print(fmt::format("no command '{}'\n", args[0]));
    return;
  }
  std::string s = "commands (BT: only under the bt backend):\n";
  for (const Command& c : command_table()) s += fmt::format("  {:<40} {}\n", c.usage, c.help);
  s += "ADDR: a number (0x100000), a symbol (guest_main, guest_main+0x10) or $reg ($eip, $esp)\n";
  print(s);
}

void DebuggerRepl::cmd_step(const Args& args) {
  uint64_t count = 1;
  if (!args.empty()) {
    const std::optional<uint64_t> n = parse_number(args[0]);
    if (!n || *n == 0) {
      print("usage: step [N], N > 0\n");
      return;
    }
    count = *n;
  }
  if (!require_running()) return;
  for (uint64_t i = 0; i < count; ++i) {
    const DebugStop stop = run_guest(true);
    if (stop.kind != DebugStop::Kind::kStep || i + 1 == count) {
      report_stop(stop);
      return;
    }
  }
}

void DebuggerRepl::cmd_next(const Args&) {
  if (!require_running()) return;
  const CpuState cpu = target_.state();
  uint8_t bytes[16];
  if (view_.read_linear(cpu, code_linear(cpu, cpu.eip), bytes)) {
    const auto lines = Disassembler(guest_mode(cpu)).disassemble(bytes, cpu.eip, 1);
    if (!lines.empty() && lines[0].text.starts_with("call")) {
      const uint32_t after = cpu.eip + lines[0].size;
      bool had = false;
      for (const auto& [n, at] : breakpoints_) had = had || at == after;
      if (!had) target_.insert_breakpoint(after);
      const DebugStop stop = run_guest(false);
      if (!had) target_.remove_breakpoint(after);
      report_stop(stop);
      return;
    }
  }
  report_stop(run_guest(true));
}

void DebuggerRepl::cmd_continue(const Args&) {
  if (!require_running()) return;
  report_stop(run_guest(false));
}

void DebuggerRepl::cmd_until(const Args& args) {
  if (args.size() != 1) {
    print("usage: until ADDR\n");
    return;
  }
  const std::optional<uint32_t> address = parse_address(args[0]);
  if (!address || !require_running()) return;
  bool had = false;
  for (const auto& [n, at] : breakpoints_) had = had || at == *address;
  if (!had) target_.insert_breakpoint(*address);
  const DebugStop stop = run_guest(false);
  if (!had) target_.remove_breakpoint(*address);
  report_stop(stop);
}

void DebuggerRepl::cmd_break(const Args& args) {
  if (args.size() != 1) {
    print("usage: break ADDR|SYMBOL\n");
    return;
  }
  const std::optional<uint32_t> address = parse_address(args[0]);
  if (!address) return;
  const int number = next_number_++;
  breakpoints_[number] = *address;
  target_.insert_breakpoint(*address);
  const std::string name = symbols_.describe(*address);
  print(fmt::format("breakpoint {} at {:#010x}{}\n", number, *address,
                    name.empty() ? "" : " <" + name + ">"));
}

void DebuggerRepl::cmd_delete(const Args& args) {
  std::vector<int> numbers;
  if (args.empty()) {
    for (const auto& [n, at] : breakpoints_) numbers.push_back(n);
    for (const auto& [n, w] : watchpoints_) numbers.push_back(n);
  } else {
    const std::optional<uint64_t> n = parse_number(args[0]);
    if (!n || (!breakpoints_.contains(static_cast<int>(*n)) &&
               !watchpoints_.contains(static_cast<int>(*n)))) {
      print(fmt::format("no breakpoint or watchpoint '{}'\n", args[0]));
      return;
    }
    numbers.push_back(static_cast<int>(*n));
  }
  for (int n : numbers) {
    if (auto b = breakpoints_.find(n); b != breakpoints_.end()) {
      const uint32_t eip = b->second;
      breakpoints_.erase(b);
      bool still = false;
      for (const auto& [m, at] : breakpoints_) still = still || at == eip;
      if (!still) target_.remove_breakpoint(eip);
    } else if (auto w = watchpoints_.find(n); w != watchpoints_.end()) {
      target_.remove_watchpoint(w->second.linear, w->second.length);
      watchpoints_.erase(w);
    }
  }
  print(fmt::format("deleted {}\n", numbers.size()));
}

void DebuggerRepl::cmd_info(const Args& args) {
  if (args.empty() || !std::string_view("breakpoints").starts_with(args[0])) {
    print("usage: info breakpoints\n");
    return;
  }
  if (breakpoints_.empty() && watchpoints_.empty()) {
    print("no breakpoints or watchpoints\n");
    return;
  }
  for (const auto& [n, at] : breakpoints_) {
    const std::string name = symbols_.describe(at);
    print(
        fmt::format("{:<3} breakpoint {:#010x}{}\n", n, at, name.empty() ? "" : " <" + name + ">"));
  }
  for (const auto& [n, w] : watchpoints_) {
    print(fmt::format("{:<3} watchpoint {:#010x} length {}\n", n, w.linear, w.length));
  }
}

void DebuggerRepl::cmd_watch(const Args& args) {
  if (args.empty() || args.size() > 2) {
    print("usage: watch ADDR [LEN]\n");
    return;
  }
  const std::optional<uint32_t> address = parse_address(args[0]);
  if (!address) return;
  uint64_t length = 4;
  if (args.size() == 2) {
    const std::optional<uint64_t> l = parse_number(args[1]);
    if (!l || *l == 0 || *l > 0x40000) {
      print("LEN is 1 to 262144 bytes\n");
      return;
    }
    length = *l;
  }
  std::string why;
  if (!target_.insert_watchpoint(*address, static_cast<uint32_t>(length), &why)) {
    print(fmt::format("cannot watch {:#010x}: {}\n", *address, why));
    return;
  }
  const int number = next_number_++;
  watchpoints_[number] = {*address, static_cast<uint32_t>(length)};
  print(fmt::format("watchpoint {} at {:#010x} length {}\n", number, *address, length));
}

void DebuggerRepl::cmd_regs(const Args&) {
  print(format_registers(target_.state(), symbols_));
}

void DebuggerRepl::cmd_examine(const Args& args) {
  // args: ["/NF", ADDR] or [ADDR].
  std::string format = "/4x";
  size_t next = 0;
  if (!args.empty() && args[0].starts_with('/')) format = args[next++];
  if (next >= args.size()) {
    print("usage: x/NF ADDR  (F: x i s, size b h w; ADDR may be p:ADDR for physical)\n");
    return;
  }
  // gdb's letters: a count, then a format (x i s) and a size (b h w) in any order.
  size_t digits = 1;
  while (digits < format.size() && std::isdigit(static_cast<unsigned char>(format[digits]))) {
    ++digits;
  }
  const uint64_t count = digits > 1 && digits <= 6 ? std::stoull(format.substr(1, digits - 1))
                         : digits > 6              ? 0
                                                   : 4;
  char f = 'x';
  uint32_t unit = 4;
  bool valid = count > 0 && count <= 4096;
  for (size_t i = digits; i < format.size(); ++i) {
    const char c = format[i];
    if (c == 'x' || c == 'i' || c == 's') {
      f = c;
    } else if (c == 'b' || c == 'h' || c == 'w') {
      unit = c == 'b' ? 1 : c == 'h' ? 2 : 4;
    } else {
      valid = false;
    }
  }
  if (!valid) {
    print(fmt::format(
        "bad format '{}': x/NF with N 1-4096, F one of x i s and an optional size b h w\n",
        format));
    return;
  }
  std::string_view text = args[next];
  const bool physical = text.starts_with("p:");
  if (physical) text.remove_prefix(2);
  const std::optional<uint32_t> address = parse_address(text);
  if (!address) return;
  const CpuState cpu = target_.state();
  const auto read = [&](uint32_t at, std::span<uint8_t> out) {
    return physical ? view_.read_physical(at, out) : view_.read_linear(cpu, at, out);
  };
  const char* space = physical ? "p:" : "";
  if (f == 'i') {
    std::vector<uint8_t> bytes(count * 15);
    size_t readable = bytes.size();
    while (readable > 0 && !read(*address, {bytes.data(), readable})) --readable;
    if (readable == 0) {
      print(fmt::format("cannot read {}{:#010x}\n", space, *address));
      return;
    }
    for (const auto& line :
         Disassembler(guest_mode(cpu)).disassemble({bytes.data(), readable}, *address, count)) {
      print(fmt::format("{}{:#010x}: {:<24} {}\n", space, line.address, line.bytes, line.text));
    }
    return;
  }
  if (f == 's') {
    std::string s;
    uint8_t c = 0;
    uint32_t at = *address;
    while (s.size() < count * 64 && read(at, {&c, 1}) && c != 0) {
      s += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '.';
      ++at;
    }
    print(fmt::format("{}{:#010x}: \"{}\"\n", space, *address, s));
    return;
  }
  const uint32_t per_line = 16 / unit;
  std::string s;
  for (uint64_t i = 0; i < count; ++i) {
    const uint32_t at = *address + static_cast<uint32_t>(i * unit);
    if (i % per_line == 0) s += fmt::format("{}{}{:#010x}:", i ? "\n" : "", space, at);
    uint32_t value = 0;
    if (!read(at, {reinterpret_cast<uint8_t*>(&value), unit})) {
      s += fmt::format("\ncannot read {}{:#010x}", space, at);
      break;
    }
    s += fmt::format(" {:0{}x}", value, unit * 2);
  }
  print(s + "\n");
}

void DebuggerRepl::cmd_disas(const Args& args) {
  const CpuState cpu = target_.state();
  uint32_t address = cpu.eip;
  uint64_t count = 10;
  if (!args.empty()) {
    const std::optional<uint32_t> a = parse_address(args[0]);
    if (!a) return;
    address = *a;
  }
  if (args.size() > 1) {
    const std::optional<uint64_t> n = parse_number(args[1]);
    if (!n || *n == 0 || *n > 1000) {
      print("usage: disas [ADDR] [N], N 1-1000\n");
      return;
    }
    count = *n;
  }
  std::vector<uint8_t> bytes(count * 15);
  size_t readable = bytes.size();
  // Stop at the first unreadable page rather than refuse the whole range.
  while (readable > 0 &&
         !view_.read_linear(cpu, code_linear(cpu, address), {bytes.data(), readable})) {
    readable = readable > 4096 ? readable - 4096 : readable - 1;
  }
  if (readable == 0) {
    print(fmt::format("cannot read {:#010x}\n", address));
    return;
  }
  for (const auto& line :
       Disassembler(guest_mode(cpu)).disassemble({bytes.data(), readable}, address, count)) {
    const std::string name = symbols_.describe(static_cast<uint32_t>(line.address));
    print(fmt::format("{}{:#010x}{}: {:<24} {}\n", line.address == cpu.eip ? "=> " : "   ",
                      line.address, name.empty() ? "" : " <" + name + ">", line.bytes, line.text));
  }
}

void DebuggerRepl::cmd_gdt(const Args&) {
  print(format_descriptor_table(view_, target_.state(), DescriptorTable::kGdt, symbols_));
}

void DebuggerRepl::cmd_idt(const Args&) {
  print(format_descriptor_table(view_, target_.state(), DescriptorTable::kIdt, symbols_));
}

void DebuggerRepl::cmd_ldt(const Args&) {
  print(format_descriptor_table(view_, target_.state(), DescriptorTable::kLdt, symbols_));
}

void DebuggerRepl::cmd_devices(const Args&) {
  print(format_devices(target_.machine()));
}

void DebuggerRepl::cmd_events(const Args&) {
  print(format_events(target_.state(), target_.machine()));
}

void DebuggerRepl::cmd_translate(const Args& args) {
  if (!require_bt("translate")) return;
  if (args.size() != 1) {
    print("usage: translate ADDR\n");
    return;
  }
  const std::optional<uint32_t> address = parse_address(args[0]);
  if (!address) return;
  print(format_translation(*target_.bt(), *address, symbols_));
}

void DebuggerRepl::cmd_tc(const Args& args) {
  if (!require_bt("tc")) return;
  if (args.empty() || (args[0] != "stats" && args[0] != "list" && args[0] != "flush")) {
    print("usage: tc stats | tc list [FILTER] | tc flush\n");
    return;
  }
  BtDebugTarget& bt = *target_.bt();
  if (args[0] == "stats") {
    print(bt.statistics());
  } else if (args[0] == "list") {
    print(format_unit_list(bt, args.size() > 1 ? args[1] : "", symbols_));
  } else {
    bt.flush_cache();
    print(fmt::format("translation cache flushed ({} flushes so far)\n", bt.flush_count()));
  }
}

void DebuggerRepl::cmd_adapt(const Args&) {
  if (!require_bt("adapt")) return;
  print(format_adaptations(*target_.bt(), symbols_));
}

void DebuggerRepl::cmd_traces(const Args&) {
  if (!require_bt("traces")) return;
  print(format_traces(*target_.bt()));
}

void DebuggerRepl::cmd_pt(const Args& args) {
  if (args.size() != 1) {
    print("usage: pt LINEAR\n");
    return;
  }
  const std::optional<uint32_t> address = parse_address(args[0]);
  if (!address) return;
  print(format_page_walk(view_, target_.state(), *address, target_.bt()));
}

void DebuggerRepl::cmd_spaces(const Args&) {
  if (!require_bt("spaces")) return;
  print(format_spaces(*target_.bt()));
}

void DebuggerRepl::cmd_quit(const Args&) {
  quit_ = true;
}

}  // namespace bt86
