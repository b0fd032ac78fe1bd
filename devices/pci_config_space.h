// PCI configuration mechanism #1 with an empty bus: the address register at
// 0xCF8 and the data window at 0xCFC-0xCFF.
//
// The address register latches 32-bit writes and reads back, which is how
// Linux (pci_check_type1) and BIOSes detect mechanism #1. Narrower accesses
// to 0xCF8-0xCFB are not decoded by a real host bridge (they go to ISA) and
// read as all-ones here; that also makes the mechanism #2 probe fail. Every
// data read returns all-ones, vendor ID 0xFFFF, so bus scans find no device;
// data writes are dropped. Devices behind it come later.
//
//   PciConfigSpace pci;
//   ports.attach(PciConfigSpace::kBase, PciConfigSpace::kPortCount, pci);
#pragma once

#include <cstdint>

#include "devices/bus.h"

namespace bt86 {

class PciConfigSpace final : public BusDevice {
 public:
  static constexpr uint16_t kBase = 0xCF8;
  static constexpr uint16_t kPortCount = 8;  // Address at +0, data at +4.

  std::string_view name() const override { return "pci-config"; }
  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

  uint32_t address() const { return address_; }

 private:
  uint32_t address_ = 0;
};

}  // namespace bt86
