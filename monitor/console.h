// The guest's serial console on the user's terminal.
//
// Interactive (stdin and stdout both terminals): begin_raw_mode() puts the
// terminal in raw mode so every key goes to the guest (Ctrl-C included), output post-
// processing stays on as QEMU leaves it, and Ctrl-A is an escape prefix as
// in QEMU: Ctrl-A x quits, Ctrl-A h prints help, Ctrl-A Ctrl-A sends one
// Ctrl-A; any other key after Ctrl-A is dropped. The saved terminal state is
// put back by restore_terminal(), the destructor (so exceptions unwinding
// through the run restore it), and the termination-signal watcher
// (termination_signals.h), which calls restore_terminal() from its thread.
//
// Scripted (either end not a terminal): plain pipes, no escapes, every input
// byte goes to the guest; EOF on input only ends input, it does not quit.
//
//   Console console(STDIN_FILENO, STDOUT_FILENO);
//   Machine machine({.serial = &console, .console_input = &console, ...});
#pragma once

#include <termios.h>

#include <cstdint>
#include <mutex>
#include <span>
#include <vector>

#include "devices/serial_output.h"
#include "monitor/console_input.h"

namespace bt86 {

class Console final : public SerialOutput, public ConsoleInput {
 public:
  static constexpr uint8_t kEscape = 0x01;  // Ctrl-A.

  // Does not take ownership of the fds. Only looks at them: the terminal
  // changes mode in begin_raw_mode(), once the run is about to start, so
  // that errors before it print on a normal terminal.
  Console(int in_fd, int out_fd);
  ~Console() override;
  Console(const Console&) = delete;
  Console& operator=(const Console&) = delete;

  bool interactive() const { return interactive_; }
  // Raw mode, if interactive.
  void begin_raw_mode();
  // Idempotent and thread-safe.
  void restore_terminal();

  void write(std::span<const uint8_t> bytes) override;
  int input_fd() const override { return input_ended_ ? -1 : in_fd_; }
  bool read_input(std::vector<uint8_t>& to_guest) override;

  // Interprets escapes in bytes as the interactive console does (exposed so
  // tests can check the escape state machine without a terminal). Returns
  // true on a quit request.
  bool interpret(std::span<const uint8_t> bytes, std::vector<uint8_t>& to_guest);

 private:
  void write_all(std::span<const uint8_t> bytes);

  int in_fd_;
  int out_fd_;
  bool interactive_ = false;
  bool input_ended_ = false;
  bool escape_pending_ = false;
  std::mutex terminal_mutex_;
  bool terminal_raw_ = false;
  termios saved_{};
};

}  // namespace bt86
