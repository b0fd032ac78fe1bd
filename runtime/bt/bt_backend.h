// The BT backend: binary translation of the guest, no hardware assist.
//
//   BtBackend backend(options);
//   auto vcpu = backend.create_vcpu(machine);  // a BtVcpu (runtime/bt/bt_vcpu.h)
#pragma once

#include "monitor/backend.h"
#include "runtime/bt/bt_vcpu.h"

namespace bt86 {

class BtBackend final : public Backend {
 public:
  explicit BtBackend(const BtOptions& options) : options_(options) {}
  std::string_view name() const override { return "bt"; }
  std::unique_ptr<Vcpu> create_vcpu(Machine& machine) override {
    return std::make_unique<BtVcpu>(machine, options_);
  }

 private:
  BtOptions options_;
};

}  // namespace bt86
