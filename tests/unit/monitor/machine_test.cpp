#include "monitor/machine.h"

#include <unistd.h>

#include <thread>

#include <gtest/gtest.h>

namespace bt86 {
namespace {

class RecordingSerial final : public SerialOutput {
 public:
  void write(std::span<const uint8_t> bytes) override { text.append(bytes.begin(), bytes.end()); }
  std::string text;
};

// Console input from a pipe, every byte for the guest.
class PipeInput final : public ConsoleInput {
 public:
  PipeInput() { EXPECT_EQ(pipe(fds_), 0); }
  ~PipeInput() override {
    close(fds_[0]);
    close(fds_[1]);
  }
  void type(std::string_view s) {
    ASSERT_EQ(::write(fds_[1], s.data(), s.size()), ssize_t(s.size()));
  }
  int input_fd() const override { return fds_[0]; }
  bool read_input(std::vector<uint8_t>& to_guest) override {
    uint8_t buffer[64];
    const ssize_t n = read(fds_[0], buffer, sizeof buffer);
    for (ssize_t i = 0; i < n; ++i) {
      if (buffer[i] == 'Q') return true;
      to_guest.push_back(buffer[i]);
    }
    return false;
  }

 private:
  int fds_[2];
};

class MachineTest : public testing::Test {
 protected:
  MachineTest() {
    auto clock = std::make_unique<ManualClock>();
    clock_ = clock.get();
    MachineParts parts;
    parts.ram_size = 32ull << 20;
    parts.serial = &serial_;
    parts.console_input = &input_;
    parts.clock = std::move(clock);
    parts.wall_clock = std::make_unique<FixedWallClock>(0);
    machine_ = std::make_unique<Machine>(std::move(parts));
  }

  void out(uint16_t port, uint8_t value) { machine_->ports().write(port, {&value, 1}); }
  uint8_t in(uint16_t port) {
    uint8_t v = 0;
    machine_->ports().read(port, {&v, 1});
    return v;
  }

  // The initialisation Linux does: vectors 0x20 / 0x28, cascade on IRQ2.
  void init_pic(uint8_t master_mask) {
    for (auto [port, value] : std::initializer_list<std::pair<uint16_t, uint8_t>>{{0x20, 0x11},
                                                                                  {0x21, 0x20},
                                                                                  {0x21, 0x04},
                                                                                  {0x21, 0x01},
                                                                                  {0xA0, 0x11},
                                                                                  {0xA1, 0x28},
                                                                                  {0xA1, 0x02},
                                                                                  {0xA1, 0x01}}) {
      out(port, value);
    }
    out(0x21, master_mask);
    out(0xA1, 0xFF);
  }

  RecordingSerial serial_;
  PipeInput input_;
  ManualClock* clock_ = nullptr;
  std::unique_ptr<Machine> machine_;
};

TEST_F(MachineTest, WriteToCom1ReachesTheSerialOutput) {
  out(0x3F8, 'h');
  out(0x3F8, 'i');
  EXPECT_EQ(serial_.text, "hi");
}

TEST_F(MachineTest, PitRaisesIrq0ThroughThePic) {
  init_pic(0xFE);
  out(0x43, 0x34);  // Channel 0, LSB then MSB, mode 2.
  out(0x40, 1193 & 0xFF);
  out(0x40, 1193 >> 8);  // About 1 ms.
  EXPECT_FALSE(machine_->interrupt_pending());
  const std::optional<uint64_t> deadline = machine_->next_deadline_ns();
  ASSERT_TRUE(deadline.has_value());
  clock_->set(*deadline);
  machine_->service_events();
  ASSERT_TRUE(machine_->interrupt_pending());
  EXPECT_EQ(machine_->acknowledge_interrupt(), 0x20);
  EXPECT_FALSE(machine_->interrupt_pending());
}

TEST_F(MachineTest, UartIrqGoesToPicPin4) {
  init_pic(0xEF);
  out(0x3FC, 0x08);  // MCR.OUT2 connects the IRQ line.
  out(0x3F9, 0x01);  // IER: received data available.
  out(0x3FA, 0x01);  // FCR: FIFO on; with the interrupt, this lets host input in.
  input_.type("x");
  machine_->service_events();
  ASSERT_TRUE(machine_->interrupt_pending());
  EXPECT_EQ(machine_->acknowledge_interrupt(), 0x24);
  EXPECT_EQ(in(0x3F8), 'x');
}

TEST_F(MachineTest, DebugExitBecomesAStopRequest) {
  EXPECT_FALSE(machine_->stop_request().has_value());
  out(0xF4, 0x21);
  const std::optional<StopRequest> stop = machine_->stop_request();
  ASSERT_TRUE(stop.has_value());
  EXPECT_EQ(*stop, (StopRequest{StopRequest::Kind::kDebugExit, (0x21 << 1) | 1}));
}

TEST_F(MachineTest, ResetThroughPort92BecomesAStopRequest) {
  out(0x92, 0x03);
  ASSERT_TRUE(machine_->stop_request().has_value());
  EXPECT_EQ(machine_->stop_request()->kind, StopRequest::Kind::kReset);
}

TEST_F(MachineTest, FirstStopRequestWins) {
  machine_->request_stop({StopRequest::Kind::kTimeout});
  machine_->request_stop({StopRequest::Kind::kUserQuit});
  EXPECT_EQ(machine_->stop_request()->kind, StopRequest::Kind::kTimeout);
  machine_->clear_stop_request();
  EXPECT_FALSE(machine_->stop_request().has_value());
}

TEST_F(MachineTest, ConsoleInputWaitsForRoomInTheUart) {
  out(0x3F9, 0x01);  // IER: received-data interrupt, which lets host input in.
  out(0x3FA, 0x01);  // FCR: FIFO on (16 bytes).
  input_.type("0123456789abcdefXYZ");
  machine_->service_events();
  std::string received;
  while (in(0x3FD) & 0x01) received.push_back(static_cast<char>(in(0x3F8)));
  EXPECT_EQ(received, "0123456789abcdef");
  machine_->service_events();
  while (in(0x3FD) & 0x01) received.push_back(static_cast<char>(in(0x3F8)));
  EXPECT_EQ(received, "0123456789abcdefXYZ");
}

TEST_F(MachineTest, WaitForEventReturnsOnConsoleInput) {
  out(0x3F9, 0x01);
  out(0x3FA, 0x01);
  input_.type("k");
  machine_->wait_for_event(clock_->now_ns() + 10'000'000'000ull);
  EXPECT_EQ(in(0x3F8), 'k');
}

TEST_F(MachineTest, WaitForEventReturnsWhenAnotherThreadStopsTheMachine) {
  std::thread stopper([&] { machine_->request_stop({StopRequest::Kind::kTimeout}); });
  machine_->wait_for_event(clock_->now_ns() + 10'000'000'000ull);
  stopper.join();
  EXPECT_EQ(machine_->stop_request()->kind, StopRequest::Kind::kTimeout);
}

TEST_F(MachineTest, QuitFromTheConsoleBecomesAStopRequest) {
  input_.type("Q");
  machine_->service_events();
  ASSERT_TRUE(machine_->stop_request().has_value());
  EXPECT_EQ(machine_->stop_request()->kind, StopRequest::Kind::kUserQuit);
}

TEST_F(MachineTest, UnclaimedPortsReadAllOnes) {
  EXPECT_EQ(in(0x2F8), 0xFF);
}

TEST(MachineConstruction, RejectsBadRamSize) {
  RecordingSerial serial;
  MachineParts parts;
  parts.ram_size = 4ull << 20;
  parts.serial = &serial;
  EXPECT_THROW(Machine{std::move(parts)}, MemoryMapError);
}

}  // namespace
}  // namespace bt86
