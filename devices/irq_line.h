// Interrupt lines as objects: a device raises its line, never a controller
// method. The PIC (and later an I/O APIC) is an IrqSink.
#pragma once

namespace bt86 {

class IrqSink {
 public:
  virtual ~IrqSink() = default;
  virtual void set_irq(unsigned pin, bool level) = 0;
};

class IrqLine {
 public:
  IrqLine() = default;
  IrqLine(IrqSink& sink, unsigned pin) : sink_(&sink), pin_(pin) {}

  void set(bool level) {
    if (sink_) sink_->set_irq(pin_, level);
  }
  // An edge: raise then lower, as ISA devices signal edge-triggered IRQs.
  void pulse() {
    set(true);
    set(false);
  }
  bool connected() const { return sink_ != nullptr; }

 private:
  IrqSink* sink_ = nullptr;
  unsigned pin_ = 0;
};

}  // namespace bt86
