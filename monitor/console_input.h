// Where the machine's console input comes from, as the event loop sees it.
//
// The Machine polls input_fd() together with its wake-up eventfd while a
// vCPU waits in hlt, and calls read_input() when the fd is readable. The
// implementation (console.h for the terminal, fakes in tests) decides what
// the user's bytes mean: most go to the guest, an escape sequence may ask to
// quit.
#pragma once

#include <cstdint>
#include <vector>

namespace bt86 {

class ConsoleInput {
 public:
  virtual ~ConsoleInput() = default;
  // The fd to poll for readability, or -1 once input has ended (EOF).
  virtual int input_fd() const = 0;
  // Reads what is available without blocking, appends the bytes meant for
  // the guest to to_guest, and returns true if the user asked to quit.
  virtual bool read_input(std::vector<uint8_t>& to_guest) = 0;
};

}  // namespace bt86
