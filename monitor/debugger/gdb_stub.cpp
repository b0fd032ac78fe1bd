#include "monitor/debugger/gdb_stub.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include <fmt/format.h>

namespace bt86 {
namespace {

// gdb's i386 core register set: 16 general and segment registers, then the
// x87 stack and control registers (validated by gdb's i386 tdesc check).
constexpr char kTargetXml[] = R"(<?xml version="1.0"?>
<!DOCTYPE target SYSTEM "gdb-target.dtd">
<target version="1.0">
  <architecture>i386</architecture>
  <feature name="org.gnu.gdb.i386.core">
    <flags id="i386_eflags" size="4">
      <field name="CF" start="0" end="0"/>
      <field name="" start="1" end="1"/>
      <field name="PF" start="2" end="2"/>
      <field name="AF" start="4" end="4"/>
      <field name="ZF" start="6" end="6"/>
      <field name="SF" start="7" end="7"/>
      <field name="TF" start="8" end="8"/>
      <field name="IF" start="9" end="9"/>
      <field name="DF" start="10" end="10"/>
      <field name="OF" start="11" end="11"/>
      <field name="NT" start="14" end="14"/>
      <field name="RF" start="16" end="16"/>
      <field name="VM" start="17" end="17"/>
      <field name="AC" start="18" end="18"/>
      <field name="VIF" start="19" end="19"/>
      <field name="VIP" start="20" end="20"/>
      <field name="ID" start="21" end="21"/>
    </flags>
    <reg name="eax" bitsize="32" type="int32" regnum="0"/>
    <reg name="ecx" bitsize="32" type="int32"/>
    <reg name="edx" bitsize="32" type="int32"/>
    <reg name="ebx" bitsize="32" type="int32"/>
    <reg name="esp" bitsize="32" type="data_ptr"/>
    <reg name="ebp" bitsize="32" type="data_ptr"/>
    <reg name="esi" bitsize="32" type="int32"/>
    <reg name="edi" bitsize="32" type="int32"/>
    <reg name="eip" bitsize="32" type="code_ptr"/>
    <reg name="eflags" bitsize="32" type="i386_eflags"/>
    <reg name="cs" bitsize="32" type="int32"/>
    <reg name="ss" bitsize="32" type="int32"/>
    <reg name="ds" bitsize="32" type="int32"/>
    <reg name="es" bitsize="32" type="int32"/>
    <reg name="fs" bitsize="32" type="int32"/>
    <reg name="gs" bitsize="32" type="int32"/>
    <reg name="st0" bitsize="80" type="i387_ext"/>
    <reg name="st1" bitsize="80" type="i387_ext"/>
    <reg name="st2" bitsize="80" type="i387_ext"/>
    <reg name="st3" bitsize="80" type="i387_ext"/>
    <reg name="st4" bitsize="80" type="i387_ext"/>
    <reg name="st5" bitsize="80" type="i387_ext"/>
    <reg name="st6" bitsize="80" type="i387_ext"/>
    <reg name="st7" bitsize="80" type="i387_ext"/>
    <reg name="fctrl" bitsize="32" type="int" group="float"/>
    <reg name="fstat" bitsize="32" type="int" group="float"/>
    <reg name="ftag" bitsize="32" type="int" group="float"/>
    <reg name="fiseg" bitsize="32" type="int" group="float"/>
    <reg name="fioff" bitsize="32" type="int" group="float"/>
    <reg name="foseg" bitsize="32" type="int" group="float"/>
    <reg name="fooff" bitsize="32" type="int" group="float"/>
    <reg name="fop" bitsize="32" type="int" group="float"/>
  </feature>
</target>
)";

constexpr int kNumRegisters = 32;
constexpr int kFirstSt = 16;
constexpr int kFirstFpuControl = 24;
// gdb's segment order: cs ss ds es fs gs.
constexpr SegReg kGdbSegments[] = {SegReg::kCs, SegReg::kSs, SegReg::kDs,
                                   SegReg::kEs, SegReg::kFs, SegReg::kGs};

std::string hex_bytes(const uint8_t* data, size_t size) {
  std::string s;
  for (size_t i = 0; i < size; ++i) s += fmt::format("{:02x}", data[i]);
  return s;
}

bool parse_hex(std::string_view text, uint64_t* value) {
  if (text.empty() || text.size() > 16) return false;
  uint64_t v = 0;
  for (char c : text) {
    int d;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (c >= 'a' && c <= 'f')
      d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      d = c - 'A' + 10;
    else
      return false;
    v = v << 4 | static_cast<uint64_t>(d);
  }
  *value = v;
  return true;
}

bool decode_hex_bytes(std::string_view text, std::vector<uint8_t>* out) {
  if (text.size() % 2) return false;
  for (size_t i = 0; i < text.size(); i += 2) {
    uint64_t b;
    if (!parse_hex(text.substr(i, 2), &b)) return false;
    out->push_back(static_cast<uint8_t>(b));
  }
  return true;
}

// A register's bytes in the FXSAVE image, or nullptr for the general ones.
size_t fpu_offset(int number, size_t* size) {
  if (number >= kFirstSt && number < kFirstFpuControl) {
    *size = 10;
    return 32 + static_cast<size_t>(number - kFirstSt) * 16;
  }
  // fctrl fstat ftag fiseg fioff foseg fooff fop: FCW FSW FTW(abridged) FCS FIP FDS FDP FOP.
  static constexpr size_t kOffsets[] = {0, 2, 4, 12, 8, 20, 16, 6};
  static constexpr size_t kSizes[] = {2, 2, 1, 2, 4, 2, 4, 2};
  *size = kSizes[number - kFirstFpuControl];
  return kOffsets[number - kFirstFpuControl];
}

}  // namespace

GdbStub::GdbStub(DebugTarget& target, uint16_t port) : target_(target), view_(target.machine()) {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) throw GdbStubError(fmt::format("socket: {}", std::strerror(errno)));
  const int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      listen(listen_fd_, 1) != 0) {
    const int err = errno;
    close(listen_fd_);
    throw GdbStubError(fmt::format("cannot listen on 127.0.0.1:{}: {}", port, std::strerror(err)));
  }
  socklen_t length = sizeof address;
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length);
  port_ = ntohs(address.sin_port);
}

GdbStub::~GdbStub() {
  if (fd_ >= 0) close(fd_);
  close(listen_fd_);
}

std::optional<VcpuExit> GdbStub::serve() {
  fd_ = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd_ < 0) throw GdbStubError(fmt::format("accept: {}", std::strerror(errno)));
  const int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  while (std::optional<std::string> packet = read_packet()) {
    if (!handle(*packet)) break;
  }
  return exit_;
}

std::optional<std::string> GdbStub::read_packet() {
  for (;;) {
    // Skip acks and stray interrupts between packets.
    const size_t start = buffer_.find('$');
    if (start != std::string::npos) {
      const size_t hash = buffer_.find('#', start);
      if (hash != std::string::npos && hash + 2 < buffer_.size()) {
        std::string payload = buffer_.substr(start + 1, hash - start - 1);
        uint64_t checksum = 0;
        uint8_t sum = 0;
        for (char c : payload) sum = static_cast<uint8_t>(sum + static_cast<uint8_t>(c));
        const bool ok =
            parse_hex(std::string_view(buffer_).substr(hash + 1, 2), &checksum) && checksum == sum;
        buffer_.erase(0, hash + 3);
        [[maybe_unused]] ssize_t n = ::write(fd_, ok ? "+" : "-", 1);
        if (ok) return payload;
        continue;
      }
    } else {
      buffer_.clear();
    }
    char chunk[4096];
    const ssize_t n = ::read(fd_, chunk, sizeof chunk);
    if (n <= 0) return std::nullopt;
    buffer_.append(chunk, static_cast<size_t>(n));
  }
}

void GdbStub::send_packet(std::string_view payload) {
  uint8_t sum = 0;
  std::string escaped;
  for (char c : payload) {
    // '$', '#', '}' and '*' must be escaped inside a packet.
    if (c == '$' || c == '#' || c == '}' || c == '*') {
      escaped += '}';
      c = static_cast<char>(c ^ 0x20);
    }
    escaped += c;
  }
  for (char c : escaped) sum = static_cast<uint8_t>(sum + static_cast<uint8_t>(c));
  const std::string packet = fmt::format("${}#{:02x}", escaped, sum);
  // gdb acknowledges with '+'; read_packet skips it with the next packet.
  size_t done = 0;
  while (done < packet.size()) {
    const ssize_t n = ::write(fd_, packet.data() + done, packet.size() - done);
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

bool GdbStub::handle(const std::string& packet) {
  const char kind = packet.empty() ? '\0' : packet[0];
  const std::string_view args = std::string_view(packet).substr(packet.empty() ? 0 : 1);
  if (packet.starts_with("qSupported")) {
    send_packet("PacketSize=4000;qXfer:features:read+;swbreak+;hwbreak+");
  } else if (packet.starts_with("qXfer:features:read:")) {
    send_packet(features(std::string_view(packet).substr(20)));
  } else if (packet == "qAttached") {
    send_packet("1");
  } else if (packet == "qC") {
    send_packet("QC1");
  } else if (packet == "qfThreadInfo") {
    send_packet("m1");
  } else if (packet == "qsThreadInfo") {
    send_packet("l");
  } else if (packet.starts_with("qSymbol")) {
    send_packet("OK");
  } else if (packet.starts_with("H") || packet.starts_with("T")) {
    send_packet("OK");
  } else if (kind == '?') {
    send_packet(last_stop_);
  } else if (kind == 'g') {
    send_packet(read_registers());
  } else if (kind == 'G') {
    std::vector<uint8_t> bytes;
    CpuState cpu = target_.state();
    bool ok = decode_hex_bytes(args, &bytes) && bytes.size() >= 16 * 4;
    for (int i = 0; ok && i < 16; ++i) {
      uint32_t v;
      std::memcpy(&v, bytes.data() + i * 4, 4);
      ok = write_register(i, v, cpu);
    }
    if (ok) target_.set_state(cpu);
    send_packet(ok ? "OK" : "E01");
  } else if (kind == 'p') {
    uint64_t number;
    if (!parse_hex(args, &number) || number >= kNumRegisters) {
      send_packet("E01");
      return true;
    }
    const std::string all = read_registers();
    size_t offset = 0;
    for (uint64_t i = 0; i < number; ++i) {
      offset += (i >= kFirstSt && i < kFirstFpuControl) ? 20 : 8;
    }
    send_packet(all.substr(offset, (number >= kFirstSt && number < kFirstFpuControl) ? 20 : 8));
  } else if (kind == 'P') {
    const size_t eq = args.find('=');
    uint64_t number;
    std::vector<uint8_t> bytes;
    CpuState cpu = target_.state();
    bool ok = eq != std::string_view::npos && parse_hex(args.substr(0, eq), &number) &&
              number < kNumRegisters && decode_hex_bytes(args.substr(eq + 1), &bytes);
    if (ok && number >= kFirstSt) {
      size_t size;
      const size_t offset = fpu_offset(static_cast<int>(number), &size);
      ok = bytes.size() >= size;
      if (ok) std::memcpy(cpu.fpu.fxsave.data() + offset, bytes.data(), size);
    } else if (ok) {
      uint32_t v = 0;
      std::memcpy(&v, bytes.data(), std::min<size_t>(bytes.size(), 4));
      ok = bytes.size() == 4 && write_register(static_cast<int>(number), v, cpu);
    }
    if (ok) target_.set_state(cpu);
    send_packet(ok ? "OK" : "E01");
  } else if (kind == 'm') {
    send_packet(read_memory(args));
  } else if (kind == 'M') {
    send_packet(write_memory(args));
  } else if (kind == 'Z' || kind == 'z') {
    send_packet(breakpoint(kind == 'Z', args));
  } else if (kind == 's' || kind == 'c') {
    if (!args.empty()) {
      uint64_t address;
      if (parse_hex(args, &address)) {
        CpuState cpu = target_.state();
        cpu.eip = static_cast<uint32_t>(address);
        target_.set_state(cpu);
      }
    }
    send_packet(run(kind == 's'));
  } else if (kind == 'k') {
    return false;
  } else if (kind == 'D') {
    send_packet("OK");
    return false;
  } else {
    send_packet("");
  }
  return true;
}

std::string GdbStub::features(std::string_view args) {
  // target.xml:OFFSET,LENGTH
  const size_t colon = args.find(':');
  const size_t comma = args.find(',');
  uint64_t offset, length;
  if (colon == std::string_view::npos || args.substr(0, colon) != "target.xml" ||
      comma == std::string_view::npos ||
      !parse_hex(args.substr(colon + 1, comma - colon - 1), &offset) ||
      !parse_hex(args.substr(comma + 1), &length)) {
    return "E00";
  }
  const std::string_view xml(kTargetXml);
  if (offset >= xml.size()) return "l";
  const std::string_view part = xml.substr(offset, length);
  return (offset + part.size() >= xml.size() ? "l" : "m") + std::string(part);
}

std::string GdbStub::read_registers() {
  const CpuState cpu = target_.state();
  std::string s;
  for (int i = 0; i < kNumGprs; ++i)
    s += hex_bytes(reinterpret_cast<const uint8_t*>(&cpu.gpr[i]), 4);
  s += hex_bytes(reinterpret_cast<const uint8_t*>(&cpu.eip), 4);
  s += hex_bytes(reinterpret_cast<const uint8_t*>(&cpu.eflags), 4);
  for (SegReg r : kGdbSegments) {
    const uint32_t selector = cpu.segment(r).selector;
    s += hex_bytes(reinterpret_cast<const uint8_t*>(&selector), 4);
  }
  for (int n = kFirstSt; n < kNumRegisters; ++n) {
    size_t size;
    const size_t offset = fpu_offset(n, &size);
    uint8_t bytes[10] = {};
    std::memcpy(bytes, cpu.fpu.fxsave.data() + offset, size);
    s += hex_bytes(bytes, n < kFirstFpuControl ? 10 : 4);
  }
  return s;
}

// General registers, EIP and EFLAGS are writable; a segment register only
// to its current selector (a new one needs a descriptor load).
bool GdbStub::write_register(int number, uint64_t value, CpuState& cpu) {
  const uint32_t v = static_cast<uint32_t>(value);
  if (number < kNumGprs) {
    cpu.gpr[number] = v;
  } else if (number == 8) {
    cpu.eip = v;
  } else if (number == 9) {
    cpu.eflags = v | eflags::kFixed1;
  } else if (number < 16) {
    return cpu.segment(kGdbSegments[number - 10]).selector == v;
  } else {
    return false;
  }
  return true;
}

std::string GdbStub::read_memory(std::string_view args) {
  const size_t comma = args.find(',');
  uint64_t address, length;
  if (comma == std::string_view::npos || !parse_hex(args.substr(0, comma), &address) ||
      !parse_hex(args.substr(comma + 1), &length) || length > 0x10000) {
    return "E01";
  }
  const CpuState cpu = target_.state();
  std::vector<uint8_t> bytes(length);
  // Partial reads are allowed: return what is readable from the start.
  size_t readable = bytes.size();
  while (readable > 0 &&
         !view_.read_linear(cpu, static_cast<uint32_t>(address), {bytes.data(), readable})) {
    --readable;
  }
  if (readable == 0 && length > 0) return "E14";
  return hex_bytes(bytes.data(), readable);
}

std::string GdbStub::write_memory(std::string_view args) {
  const size_t comma = args.find(',');
  const size_t colon = args.find(':');
  uint64_t address, length;
  std::vector<uint8_t> bytes;
  if (comma == std::string_view::npos || colon == std::string_view::npos ||
      !parse_hex(args.substr(0, comma), &address) ||
      !parse_hex(args.substr(comma + 1, colon - comma - 1), &length) ||
      !decode_hex_bytes(args.substr(colon + 1), &bytes) || bytes.size() != length) {
    return "E01";
  }
  const bool ok = view_.write_linear(
      target_.state(), static_cast<uint32_t>(address), bytes,
      [&](uint32_t physical, uint32_t size) { target_.memory_written(physical, size); });
  return ok ? "OK" : "E14";
}

std::string GdbStub::breakpoint(bool insert, std::string_view args) {
  // TYPE,ADDR,KIND
  const size_t first = args.find(',');
  const size_t second = args.find(',', first + 1);
  uint64_t address, kind;
  if (first != 1 || second == std::string_view::npos ||
      !parse_hex(args.substr(first + 1, second - first - 1), &address) ||
      !parse_hex(args.substr(second + 1), &kind)) {
    return "E01";
  }
  const uint32_t at = static_cast<uint32_t>(address);
  switch (args[0]) {
    case '0':
    case '1':
      if (insert)
        target_.insert_breakpoint(at);
      else
        target_.remove_breakpoint(at);
      return "OK";
    case '2': {
      if (!insert) {
        target_.remove_watchpoint(at, static_cast<uint32_t>(kind));
        return "OK";
      }
      std::string why;
      return target_.insert_watchpoint(at, static_cast<uint32_t>(kind), &why) ? "OK" : "E01";
    }
    default:
      return "";  // Read and access watchpoints: not supported.
  }
}

std::string GdbStub::run(bool step) {
  if (exit_) return stop_reply({DebugStop::Kind::kExited, 0, *exit_});
  // ^C from gdb while the guest runs: a watcher polls the socket.
  const int done = eventfd(0, EFD_CLOEXEC);
  std::thread watcher([&] {
    for (;;) {
      pollfd fds[2] = {{fd_, POLLIN, 0}, {done, POLLIN, 0}};
      if (poll(fds, 2, -1) < 0 && errno != EINTR) return;
      if (fds[1].revents) return;
      if (fds[0].revents & (POLLHUP | POLLERR)) {
        target_.interrupt();
        return;
      }
      if (fds[0].revents & POLLIN) {
        char c;
        if (::read(fd_, &c, 1) != 1) {
          target_.interrupt();
          return;
        }
        if (c == 0x03) target_.interrupt();
      }
    }
  });
  const DebugStop stop = step ? target_.step() : target_.resume();
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(done, &one, sizeof one);
  watcher.join();
  close(done);
  last_stop_ = stop_reply(stop);
  return last_stop_;
}

std::string GdbStub::stop_reply(const DebugStop& stop) {
  switch (stop.kind) {
    case DebugStop::Kind::kStep:
      return "S05";
    case DebugStop::Kind::kBreakpoint:
      return "T05swbreak:;";
    case DebugStop::Kind::kWatchpoint:
      return fmt::format("T05watch:{:x};", stop.address);
    case DebugStop::Kind::kInterrupted:
      return "S02";
    case DebugStop::Kind::kExited:
      exit_ = stop.exit;
      if (stop.exit.kind == VcpuExit::Kind::kDebugExit) {
        return fmt::format("W{:02x}", stop.exit.status & 0xFF);
      }
      if (stop.exit.kind == VcpuExit::Kind::kTripleFault ||
          stop.exit.kind == VcpuExit::Kind::kError) {
        return "X0b";  // As if killed by SIGSEGV.
      }
      return "W00";
  }
  return "S05";
}

}  // namespace bt86
