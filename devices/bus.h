// The device bus: one interface for port I/O and MMIO.
//
// A device sees offsets within its own range and a data span, never absolute
// addresses, so the same model can sit at any base. A bus owns a sorted list
// of non-overlapping ranges; registration rejects overlaps. Accesses to
// unclaimed addresses read as all-ones and drop writes, and each such address
// is logged once (debug log), never fatal: a guest probing for hardware must
// not be able to stop the VMM.
//
//   Bus ports("port", log);
//   ports.attach(0x3F8, 8, uart);          // uart is a BusDevice&
//   uint8_t v; ports.read(0x3FD, {&v, 1});  // uart.read(5, ...)
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "devices/debug_log.h"

namespace bt86 {

class BusDevice {
 public:
  virtual ~BusDevice() = default;
  virtual std::string_view name() const = 0;
  // data.size() is the access width (1, 2 or 4 for ports; up to 8 for MMIO).
  virtual void read(uint64_t offset, std::span<uint8_t> data) = 0;
  virtual void write(uint64_t offset, std::span<const uint8_t> data) = 0;
};

class Bus {
 public:
  Bus(std::string name, DebugLog& log) : name_(std::move(name)), log_(log) {}

  // Throws std::invalid_argument if [base, base+length) overlaps a range
  // already attached or length is zero. The device must outlive the bus.
  void attach(uint64_t base, uint64_t length, BusDevice& device);

  // Returns false if no device claims addr (the access then reads all-ones).
  bool read(uint64_t addr, std::span<uint8_t> data);
  bool write(uint64_t addr, std::span<const uint8_t> data);

  // The device claiming addr, or nullptr.
  BusDevice* find(uint64_t addr) const;

  struct Range {
    uint64_t base;
    uint64_t length;
    BusDevice* device;
  };
  const std::vector<Range>& ranges() const { return ranges_; }

  // Counts reads and writes, so that a caller can tell whether any device
  // state may have changed since it last looked.
  uint64_t accesses() const { return accesses_; }

 private:
  const Range* lookup(uint64_t addr) const;
  void note_unclaimed(uint64_t addr, bool is_write);

  std::string name_;
  DebugLog& log_;
  std::vector<Range> ranges_;  // Sorted by base, non-overlapping.
  std::vector<uint64_t> logged_unclaimed_;
  uint64_t accesses_ = 0;
};

}  // namespace bt86
