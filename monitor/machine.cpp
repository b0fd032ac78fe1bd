#include "monitor/machine.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <system_error>

namespace bt86 {

namespace {

// Host input is held here while the UART's FIFO is full; beyond this the
// console is not read until the guest catches up (the terminal buffers).
constexpr size_t kMaxPendingInput = 4096;

SerialOutput& require_serial(SerialOutput* serial) {
  if (!serial) throw std::invalid_argument("Machine needs a SerialOutput for COM1");
  return *serial;
}

std::unique_ptr<Clock> or_monotonic(std::unique_ptr<Clock> clock) {
  return clock ? std::move(clock) : std::make_unique<MonotonicClock>();
}

std::unique_ptr<WallClock> or_host(std::unique_ptr<WallClock> clock) {
  return clock ? std::move(clock) : std::make_unique<HostWallClock>();
}

}  // namespace

Machine::Machine(MachineParts parts)
    : log_(parts.debug_log),
      clock_(or_monotonic(std::move(parts.clock))),
      wall_clock_(or_host(std::move(parts.wall_clock))),
      map_(parts.ram_size),
      memory_(parts.ram_size),
      ports_("port", log_),
      mmio_("mmio", log_),
      console_input_(parts.console_input),
      pic_(log_,
           [this](bool intr) {
             if (interrupt_listener_) interrupt_listener_(intr);
           }),
      pit_(*clock_, IrqLine(pic_, 0), log_),
      port_b_(pit_),
      i8042_(control_, IrqLine(pic_, 1), IrqLine(pic_, 12), log_),
      rtc_(*clock_, *wall_clock_, parts.ram_size, IrqLine(pic_, RtcCmos::kIrq), log_),
      port92_(control_),
      debug_exit_(control_),
      uart_(require_serial(parts.serial), IrqLine(pic_, Uart16550::kCom1Irq), log_) {
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");

  pic_.attach(ports_);
  ports_.attach(Pit8254::kBase, Pit8254::kPortCount, pit_);
  ports_.attach(SystemControlPortB::kBase, SystemControlPortB::kPortCount, port_b_);
  i8042_.attach(ports_);
  ports_.attach(RtcCmos::kBase, RtcCmos::kPortCount, rtc_);
  ports_.attach(PostCodePort::kBase, PostCodePort::kPortCount, post_code_);
  ports_.attach(Port92::kBase, Port92::kPortCount, port92_);
  ports_.attach(DebugExit::kBase, DebugExit::kPortCount, debug_exit_);
  ports_.attach(Uart16550::kCom1Base, Uart16550::kPortCount, uart_);
  ports_.attach(PciConfigSpace::kBase, PciConfigSpace::kPortCount, pci_);
}

Machine::~Machine() {
  close(wake_fd_);
}

void Machine::set_interrupt_listener(std::function<void(bool)> listener) {
  interrupt_listener_ = std::move(listener);
}

void Machine::service_events() {
  const uint64_t now = clock_->now_ns();
  for (TimedDevice* device : {static_cast<TimedDevice*>(&pit_), static_cast<TimedDevice*>(&rtc_)}) {
    const std::optional<uint64_t> deadline = device->next_deadline_ns();
    if (deadline && *deadline <= now) device->advance_to(now);
  }
  poll_console(0);
  feed_uart();
}

std::optional<uint64_t> Machine::next_deadline_ns() const {
  std::optional<uint64_t> earliest;
  for (const TimedDevice* device :
       {static_cast<const TimedDevice*>(&pit_), static_cast<const TimedDevice*>(&rtc_)}) {
    const std::optional<uint64_t> d = device->next_deadline_ns();
    if (d && (!earliest || *d < *earliest)) earliest = d;
  }
  return earliest;
}

void Machine::feed_uart() {
  if (pending_input_.empty()) return;
  const size_t taken = uart_.receive(pending_input_);
  pending_input_.erase(pending_input_.begin(), pending_input_.begin() + taken);
}

// Reads the console if it has input within timeout_ms (0: only if ready now).
void Machine::poll_console(int timeout_ms) {
  if (!console_input_ || console_input_->input_fd() < 0) return;
  if (pending_input_.size() >= kMaxPendingInput) return;
  pollfd fd{console_input_->input_fd(), POLLIN, 0};
  if (poll(&fd, 1, timeout_ms) <= 0 || fd.revents == 0) return;
  if (console_input_->read_input(pending_input_)) {
    request_stop({StopRequest::Kind::kUserQuit});
  }
}

void Machine::wait_for_event(std::optional<uint64_t> deadline_ns) {
  if (stop_pending_.load(std::memory_order_acquire)) return;
  timespec timeout{};
  timespec* timeout_ptr = nullptr;
  if (deadline_ns) {
    const uint64_t now = clock_->now_ns();
    if (*deadline_ns <= now) return;
    const uint64_t wait = *deadline_ns - now;
    timeout.tv_sec = static_cast<time_t>(wait / 1'000'000'000);
    timeout.tv_nsec = static_cast<long>(wait % 1'000'000'000);
    timeout_ptr = &timeout;
  }
  pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {-1, POLLIN, 0}};
  if (console_input_ && pending_input_.size() < kMaxPendingInput) {
    fds[1].fd = console_input_->input_fd();
  }
  if (ppoll(fds, 2, timeout_ptr, nullptr) <= 0) return;  // Timeout or EINTR.
  if (fds[0].revents) {
    uint64_t count;
    [[maybe_unused]] const ssize_t n = read(wake_fd_, &count, sizeof count);
  }
  if (fds[1].revents && console_input_->read_input(pending_input_)) {
    request_stop({StopRequest::Kind::kUserQuit});
  }
  feed_uart();
}

void Machine::wake() {
  const uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = write(wake_fd_, &one, sizeof one);
}

void Machine::request_stop(StopRequest request) {
  {
    std::lock_guard lock(stop_mutex_);
    if (stop_request_) return;
    stop_request_ = request;
    stop_pending_.store(true, std::memory_order_release);
  }
  wake();
}

std::optional<StopRequest> Machine::stop_request() const {
  if (!stop_pending_.load(std::memory_order_acquire)) return std::nullopt;
  std::lock_guard lock(stop_mutex_);
  return stop_request_;
}

void Machine::clear_stop_request() {
  std::lock_guard lock(stop_mutex_);
  stop_request_.reset();
  stop_pending_.store(false, std::memory_order_release);
}

void Machine::Control::request_reset() {
  machine_.request_stop({StopRequest::Kind::kReset});
}

void Machine::Control::request_debug_exit(int status) {
  machine_.request_stop({StopRequest::Kind::kDebugExit, status});
}

void Machine::Control::set_a20(bool enabled) {
  machine_.a20_ = enabled;
  if (!enabled) {
    machine_.log_.note("guest disabled the A20 gate; bt86 does not wrap addresses at 1 MiB");
  }
}

}  // namespace bt86
