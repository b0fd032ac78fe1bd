#include "devices/uart_16550.h"

#include <gtest/gtest.h>

#include <vector>

#include "tests/unit/devices/device_test_support.h"

namespace bt86 {
namespace {

class RecordingOutput final : public SerialOutput {
 public:
  void write(std::span<const uint8_t> bytes) override {
    written.insert(written.end(), bytes.begin(), bytes.end());
  }
  std::vector<uint8_t> written;
};

constexpr uint16_t kBase = Uart16550::kCom1Base;
constexpr uint16_t kRbr = kBase + 0;
constexpr uint16_t kIer = kBase + 1;
constexpr uint16_t kIir = kBase + 2;
constexpr uint16_t kLcr = kBase + 3;
constexpr uint16_t kMcr = kBase + 4;
constexpr uint16_t kLsr = kBase + 5;
constexpr uint16_t kMsr = kBase + 6;
constexpr uint16_t kScr = kBase + 7;

class Uart16550Test : public ::testing::Test {
 protected:
  Uart16550Test() { bus.attach(kBase, Uart16550::kPortCount, uart); }
  bool irq() const { return irqs.levels[4]; }

  DebugLog log;
  Bus bus{"port", log};
  test::PortIo io{bus};
  test::RecordingIrqSink irqs;
  RecordingOutput output;
  Uart16550 uart{output, IrqLine(irqs, 4), log};
};

TEST_F(Uart16550Test, LinuxProbeScratchIerAndLoopback) {
  // drivers/tty/serial/8250/8250_port.c autoconfig().
  io.outb(kScr, 0xA5);
  EXPECT_EQ(io.inb(kScr), 0xA5);
  io.outb(kIer, 0x00);
  EXPECT_EQ(io.inb(kIer) & 0x0F, 0x00);
  io.outb(kIer, 0x0F);
  EXPECT_EQ(io.inb(kIer) & 0x0F, 0x0F);
  io.outb(kIer, 0x00);
  // Loopback with RTS and OUT2: MSR must read CTS and DCD only.
  io.outb(kMcr, 0x10 | 0x0A);
  EXPECT_EQ(io.inb(kMsr) & 0xF0, 0x90);
  io.outb(kMcr, 0x00);
  EXPECT_EQ(io.inb(kMsr) & 0xF0, 0xB0);  // A terminal is attached.
}

TEST_F(Uart16550Test, FifoDetectionThroughIirBits) {
  EXPECT_EQ(io.inb(kIir), 0x01);    // No FIFO, nothing pending.
  io.outb(kIir, 0x01);              // FCR: enable FIFOs.
  EXPECT_EQ(io.inb(kIir) >> 6, 3);  // A 16550A.
  io.outb(kIir, 0x00);
  EXPECT_EQ(io.inb(kIir) >> 6, 0);
}

TEST_F(Uart16550Test, DivisorLatchBehindDlab) {
  io.outb(kLcr, 0x80);
  io.outb(kRbr, 0x01);  // 115200 baud.
  io.outb(kIer, 0x00);
  EXPECT_EQ(io.inb(kRbr), 0x01);
  EXPECT_EQ(io.inb(kIer), 0x00);
  EXPECT_EQ(uart.divisor(), 1);
  io.outb(kLcr, 0x03);  // 8N1, DLAB off.
  io.outb(kIer, 0x05);
  EXPECT_EQ(io.inb(kIer), 0x05);
  EXPECT_EQ(uart.divisor(), 1);
  EXPECT_TRUE(output.written.empty());
}

TEST_F(Uart16550Test, TransmitGoesToOutputAndLsrShowsEmpty) {
  io.outb(kRbr, 'h');
  io.outb(kRbr, 'i');
  EXPECT_EQ(output.written, (std::vector<uint8_t>{'h', 'i'}));
  EXPECT_EQ(io.inb(kLsr) & 0x60, 0x60);
}

TEST_F(Uart16550Test, ThreInterruptOnEnableAndAfterEachWrite) {
  io.outb(kMcr, 0x08);  // OUT2: the PC's IRQ enable.
  io.outb(kIer, 0x02);
  EXPECT_TRUE(irq());
  EXPECT_EQ(io.inb(kIir), 0x02);
  EXPECT_FALSE(irq());  // Reading IIR cleared THRE.
  EXPECT_EQ(io.inb(kIir), 0x01);
  io.outb(kRbr, 'x');
  EXPECT_TRUE(irq());
  EXPECT_EQ(irqs.rising_edges[4], 2);
  // With THRE still pending, a second write makes a new edge.
  io.outb(kRbr, 'y');
  EXPECT_EQ(irqs.rising_edges[4], 3);
  io.outb(kIer, 0x00);
  EXPECT_FALSE(irq());
}

TEST_F(Uart16550Test, Out2GatesTheIrqLine) {
  io.outb(kIer, 0x02);
  EXPECT_FALSE(irq());
  EXPECT_EQ(io.inb(kIir) & 0x0F, 0x02);  // Pending inside the UART all the same.
  io.outb(kIer, 0x00);
  io.outb(kIer, 0x02);
  io.outb(kMcr, 0x08);
  EXPECT_TRUE(irq());
  io.outb(kMcr, 0x00);
  EXPECT_FALSE(irq());
}

// The order Linux's 8250 driver opens the port in: receive interrupt first,
// FIFOs second (which clears them).
TEST_F(Uart16550Test, HostInputWaitsForTheReceiveInterruptWithFifosOn) {
  const uint8_t input[] = {'a'};
  EXPECT_EQ(uart.rx_space(), 0u);
  EXPECT_EQ(uart.receive(input), 0u);
  io.outb(kIer, 0x05);
  EXPECT_EQ(uart.rx_space(), 0u);
  io.outb(kIir, 0x01);
  EXPECT_EQ(uart.rx_space(), 16u);
  io.outb(kIer, 0x00);  // Masking it again (as console writes do) keeps input flowing.
  EXPECT_EQ(uart.receive(input), 1u);
  EXPECT_EQ(io.inb(kRbr), 'a');
}

TEST_F(Uart16550Test, ReceiveWithoutFifoHoldsOneByte) {
  io.outb(kIer, 0x01);
  io.outb(kIir, 0x01);
  io.outb(kIir, 0x00);  // Once input flows, it keeps flowing without the FIFOs.
  EXPECT_EQ(uart.rx_space(), 1u);
  const uint8_t input[] = {'a', 'b'};
  EXPECT_EQ(uart.receive(input), 1u);
  EXPECT_EQ(io.inb(kLsr) & 0x01, 0x01);
  EXPECT_EQ(io.inb(kRbr), 'a');
  EXPECT_EQ(io.inb(kLsr) & 0x01, 0x00);
}

TEST_F(Uart16550Test, ReceiveFifoDataReadyAndTriggerLevel) {
  io.outb(kIir, 0xC7);  // FIFOs on, both reset, trigger 14.
  io.outb(kMcr, 0x08);
  io.outb(kIer, 0x01);
  EXPECT_FALSE(irq());
  EXPECT_EQ(uart.rx_space(), 16u);
  const std::vector<uint8_t> few = {1, 2, 3, 4};
  EXPECT_EQ(uart.receive(few), 4u);
  EXPECT_TRUE(irq());
  EXPECT_EQ(io.inb(kIir), 0xCC);  // Below the trigger level: character timeout.
  const std::vector<uint8_t> more(10, 7);
  EXPECT_EQ(uart.receive(more), 10u);
  EXPECT_EQ(io.inb(kIir), 0xC4);  // At the trigger level: received data available.
  EXPECT_EQ(uart.rx_space(), 2u);
  for (uint8_t expected : {1, 2, 3, 4}) EXPECT_EQ(io.inb(kRbr), expected);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(io.inb(kRbr), 7);
  EXPECT_FALSE(irq());
  EXPECT_EQ(io.inb(kLsr) & 0x01, 0x00);
  EXPECT_EQ(io.inb(kIir), 0xC1);
}

TEST_F(Uart16550Test, FcrResetClearsReceiveFifo) {
  io.outb(kIer, 0x01);
  io.outb(kIir, 0x01);
  const std::vector<uint8_t> bytes = {1, 2, 3};
  uart.receive(bytes);
  io.outb(kIir, 0x03);
  EXPECT_EQ(io.inb(kLsr) & 0x01, 0x00);
}

TEST_F(Uart16550Test, LoopbackEchoesTransmitIntoReceiveAndDisconnectsIrq) {
  io.outb(kIir, 0x01);
  io.outb(kMcr, 0x18);  // Loopback + OUT2.
  io.outb(kIer, 0x01);
  EXPECT_EQ(uart.rx_space(), 0u);  // Host input waits while in loopback.
  io.outb(kRbr, 0x5A);
  EXPECT_TRUE(output.written.empty());
  EXPECT_EQ(io.inb(kLsr) & 0x01, 0x01);
  EXPECT_EQ(io.inb(kIir) & 0x0F, 0x04);  // Trigger level 1: data available.
  EXPECT_FALSE(irq());
  EXPECT_EQ(io.inb(kRbr), 0x5A);
}

TEST_F(Uart16550Test, OverrunIsALineStatusInterruptClearedByLsrRead) {
  io.outb(kMcr, 0x08);
  io.outb(kIer, 0x05);
  io.outb(kMcr, 0x18);  // Loopback to overfill the one-byte holding register.
  io.outb(kRbr, 1);
  io.outb(kRbr, 2);
  io.outb(kMcr, 0x08);
  EXPECT_TRUE(irq());
  EXPECT_EQ(io.inb(kIir), 0x06);
  EXPECT_EQ(io.inb(kLsr) & 0x03, 0x03);
  EXPECT_EQ(io.inb(kIir), 0x04);  // Data still there.
  EXPECT_EQ(io.inb(kRbr), 1);
  EXPECT_FALSE(irq());
}

TEST_F(Uart16550Test, ModemStatusInterruptOnLoopbackLineChanges) {
  io.outb(kMcr, 0x10);
  io.inb(kMsr);  // Clear the deltas of entering loopback.
  io.outb(kIer, 0x08);
  EXPECT_EQ(io.inb(kIir), 0x01);
  io.outb(kMcr, 0x12);  // RTS -> CTS.
  EXPECT_EQ(io.inb(kIir), 0x00);
  EXPECT_EQ(io.inb(kMsr), 0x11);  // CTS with DCTS.
  EXPECT_EQ(io.inb(kIir), 0x01);
}

}  // namespace
}  // namespace bt86
