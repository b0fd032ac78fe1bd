// The debugger's command language: a table of commands, each with its
// help text, run against a DebugTarget.
//
// Commands read one line each. Output goes to the given FILE (stdout), so
// scripts and tests drive the REPL exactly as a person does: `bt86 debug
// ... --script FILE` or commands on a non-terminal stdin run in order; on a
// terminal libedit gives line editing, history and Tab completion of
// command names and symbols. Commands that only make sense for BT say so
// under KVM. Addresses are numbers (0x..., decimal), symbols (name or
// name+off), or $reg.
//
//   DebuggerRepl repl(target, symbols, stdout, ctrl_c);
//   repl.execute("break guest_main");
//   repl.execute("continue");
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "monitor/debug_target.h"
#include "monitor/debugger/guest_view.h"
#include "monitor/debugger/interrupt_watcher.h"
#include "monitor/debugger/symbol_table.h"

namespace bt86 {

class DebuggerRepl {
 public:
  DebuggerRepl(DebugTarget& target, const SymbolTable& symbols, std::FILE* out,
               InterruptWatcher& ctrl_c);

  // Runs one command line. Returns false when the session should end.
  bool execute(std::string_view line);
  // Reads commands from in until EOF or quit; echo prints each before its
  // output (for scripts, so the transcript reads as a session).
  void run_lines(std::FILE* in, bool echo);
  // Line editing on a terminal (libedit).
  void run_interactive();

  // The guest's end, once it has stopped for good.
  const std::optional<VcpuExit>& guest_exit() const { return exit_; }
  // Command names starting with prefix (completion).
  std::vector<std::string> complete_command(std::string_view prefix) const;
  const SymbolTable& symbols() const { return symbols_; }

  // Parses ADDR: number, symbol[+off], $reg. nullopt with a message printed.
  std::optional<uint32_t> parse_address(std::string_view text);

 private:
  using Args = std::vector<std::string>;
  struct Command {
    std::string name;
    std::string usage;
    std::string help;
    void (DebuggerRepl::*run)(const Args& args);
  };

  void print(std::string_view text);
  bool require_bt(std::string_view command);
  bool require_running();
  void report_stop(const DebugStop& stop);
  DebugStop run_guest(bool step);
  void show_location();

  void cmd_help(const Args& args);
  void cmd_step(const Args& args);
  void cmd_next(const Args& args);
  void cmd_continue(const Args& args);
  void cmd_until(const Args& args);
  void cmd_break(const Args& args);
  void cmd_delete(const Args& args);
  void cmd_info(const Args& args);
  void cmd_watch(const Args& args);
  void cmd_regs(const Args& args);
  void cmd_examine(const Args& args);
  void cmd_disas(const Args& args);
  void cmd_gdt(const Args& args);
  void cmd_idt(const Args& args);
  void cmd_ldt(const Args& args);
  void cmd_devices(const Args& args);
  void cmd_events(const Args& args);
  void cmd_translate(const Args& args);
  void cmd_tc(const Args& args);
  void cmd_adapt(const Args& args);
  void cmd_traces(const Args& args);
  void cmd_pt(const Args& args);
  void cmd_spaces(const Args& args);
  void cmd_quit(const Args& args);

  static const std::vector<Command>& command_table();

  DebugTarget& target_;
  const SymbolTable& symbols_;
  std::FILE* out_;
  InterruptWatcher& ctrl_c_;
  GuestView view_;
  std::map<int, uint32_t> breakpoints_;  // Number -> EIP.
  struct Watch {
    uint32_t linear;
    uint32_t length;
  };
  std::map<int, Watch> watchpoints_;
  int next_number_ = 1;
  std::optional<VcpuExit> exit_;
  bool quit_ = false;
};

}  // namespace bt86
