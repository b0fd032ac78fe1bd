// The GDB remote serial protocol for the guest, over TCP on 127.0.0.1.
//
// One gdb connects; the guest stays stopped at its first instruction until
// gdb says otherwise. Supported: qSupported, the i386 target description
// (qXfer:features:read), ?, g/G and p/P (eax..gs, the x87 registers from
// the FXSAVE image), m/M memory by linear address, Z0/z0 (and Z1/z1, the
// same) breakpoints — under BT they invalidate the translations holding
// the address —, Z2/z2 write watchpoints, s, c, ^C while running, k and D.
// The guest's end is reported as W (exit status) or X (crash).
//
//   GdbStub stub(target, 1234);   // listens; throws GdbStubError
//   std::optional<VcpuExit> end = stub.serve();
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "monitor/debug_target.h"
#include "monitor/debugger/guest_view.h"

namespace bt86 {

class GdbStubError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class GdbStub {
 public:
  // port 0 picks a free port (see port()).
  GdbStub(DebugTarget& target, uint16_t port);
  ~GdbStub();
  GdbStub(const GdbStub&) = delete;
  GdbStub& operator=(const GdbStub&) = delete;

  uint16_t port() const { return port_; }
  // Accepts one connection and serves it until k, D or a lost connection.
  // Returns how the guest ended, if it did.
  std::optional<VcpuExit> serve();

 private:
  // One packet's payload, or nullopt when the connection is gone.
  std::optional<std::string> read_packet();
  void send_packet(std::string_view payload);
  // Returns false to end the session.
  bool handle(const std::string& packet);
  std::string run(bool step);
  std::string stop_reply(const DebugStop& stop);
  std::string read_registers();
  bool write_register(int number, uint64_t value, CpuState& cpu);
  std::string read_memory(std::string_view args);
  std::string write_memory(std::string_view args);
  std::string breakpoint(bool insert, std::string_view args);
  std::string features(std::string_view args);

  DebugTarget& target_;
  GuestView view_;
  int listen_fd_ = -1;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::string buffer_;  // Bytes read but not yet parsed.
  std::optional<VcpuExit> exit_;
  std::string last_stop_ = "S05";
};

}  // namespace bt86
