#include "monitor/console.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <string_view>

namespace bt86 {

namespace {

constexpr std::string_view kHelp =
    "\r\nbt86 console escapes:\r\n"
    "  C-a h    print this help\r\n"
    "  C-a x    exit bt86\r\n"
    "  C-a C-a  send C-a to the guest\r\n";

}  // namespace

Console::Console(int in_fd, int out_fd) : in_fd_(in_fd), out_fd_(out_fd) {
  interactive_ = isatty(in_fd) && isatty(out_fd) && tcgetattr(in_fd, &saved_) == 0;
}

void Console::begin_raw_mode() {
  std::lock_guard lock(terminal_mutex_);
  if (!interactive_ || terminal_raw_) return;
  termios raw = saved_;
  raw.c_iflag &= ~(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
  raw.c_lflag &= ~(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
  raw.c_cflag &= ~(CSIZE | PARENB);
  raw.c_cflag |= CS8;
  raw.c_cc[VMIN] = 1;
  raw.c_cc[VTIME] = 0;
  if (tcsetattr(in_fd_, TCSANOW, &raw) == 0) terminal_raw_ = true;
}

Console::~Console() {
  restore_terminal();
}

void Console::restore_terminal() {
  std::lock_guard lock(terminal_mutex_);
  if (!terminal_raw_) return;
  tcsetattr(in_fd_, TCSANOW, &saved_);
  terminal_raw_ = false;
}

void Console::write_all(std::span<const uint8_t> bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(out_fd_, bytes.data(), bytes.size());
    if (n > 0) {
      bytes = bytes.subspan(static_cast<size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && errno == EAGAIN) {
      pollfd fd{out_fd_, POLLOUT, 0};
      poll(&fd, 1, -1);
    } else {
      // The reader went away (EPIPE) or the fd broke: the guest keeps
      // running, its output has nowhere to go.
      return;
    }
  }
}

void Console::write(std::span<const uint8_t> bytes) {
  write_all(bytes);
}

bool Console::read_input(std::vector<uint8_t>& to_guest) {
  if (input_ended_) return false;
  uint8_t buffer[256];
  const ssize_t n = ::read(in_fd_, buffer, sizeof buffer);
  if (n == 0) {
    input_ended_ = true;
    return false;
  }
  if (n < 0) {
    if (errno != EINTR && errno != EAGAIN) input_ended_ = true;
    return false;
  }
  const std::span<const uint8_t> bytes(buffer, static_cast<size_t>(n));
  if (!interactive_) {
    to_guest.insert(to_guest.end(), bytes.begin(), bytes.end());
    return false;
  }
  return interpret(bytes, to_guest);
}

bool Console::interpret(std::span<const uint8_t> bytes, std::vector<uint8_t>& to_guest) {
  for (const uint8_t byte : bytes) {
    if (!escape_pending_) {
      if (byte == kEscape) {
        escape_pending_ = true;
      } else {
        to_guest.push_back(byte);
      }
      continue;
    }
    escape_pending_ = false;
    switch (byte) {
      case 'x':
      case 'X':
        return true;
      case 'h':
      case 'H':
      case '?':
        write_all({reinterpret_cast<const uint8_t*>(kHelp.data()), kHelp.size()});
        break;
      case kEscape:
        to_guest.push_back(kEscape);
        break;
      default:
        break;
    }
  }
  return false;
}

}  // namespace bt86
