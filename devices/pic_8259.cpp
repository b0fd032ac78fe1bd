#include "devices/pic_8259.h"

#include "devices/io_access.h"

namespace bt86 {

Pic8259::Pic8259(DebugLog& log, std::function<void(bool)> on_intr_change)
    : log_(log), on_intr_change_(std::move(on_intr_change)) {
  // PIIX: IRQ 0, 1, 2 (cascade), 8 (RTC) and 13 (FPU) are always edge.
  chips_[0].elcr_mask = 0xF8;
  chips_[1].elcr_mask = 0xDE;
}

void Pic8259::attach(Bus& ports) {
  ports.attach(kMasterBase, kPortCount, master_ports_);
  ports.attach(kSlaveBase, kPortCount, slave_ports_);
  ports.attach(kElcrBase, kPortCount, elcr_ports_);
}

Pic8259::ChipRegisters Pic8259::registers(bool slave) const {
  const Chip& c = chips_[slave ? 1 : 0];
  return {c.irr, c.isr, c.imr, c.vector_base, c.elcr};
}

// The priority (0 = highest) of the best request in mask, 8 if none.
int Pic8259::priority_of(const Chip& chip, uint8_t mask) {
  if (mask == 0) return 8;
  int priority = 0;
  while ((mask & (1u << ((priority + chip.priority_base) & 7))) == 0) ++priority;
  return priority;
}

// The IRQ this chip would signal now, or -1.
int Pic8259::requested_irq(const Chip& chip, bool is_master) {
  const int priority = priority_of(chip, chip.irr & ~chip.imr);
  if (priority == 8) return -1;
  uint8_t in_service = chip.isr;
  // Special mask mode: a masked in-service level does not block lower ones.
  if (chip.special_mask) in_service &= ~chip.imr;
  // Special fully nested mode: the slave may interrupt while another of its
  // requests is in service, so the cascade's ISR bit does not block.
  if (chip.special_fully_nested && is_master) in_service &= ~0x04;
  if (priority < priority_of(chip, in_service)) return (priority + chip.priority_base) & 7;
  return -1;
}

void Pic8259::set_irq(unsigned pin, bool level) {
  if (pin >= 16 || pin == 2) {
    log_.note("pic: IRQ {} does not exist (2 is the cascade); ignored", pin);
    return;
  }
  set_input(chips_[pin / 8], pin % 8, level);
  update();
}

void Pic8259::set_input(Chip& chip, unsigned pin, bool level) {
  const uint8_t mask = static_cast<uint8_t>(1u << pin);
  const bool level_triggered = chip.level_triggered_all || (chip.elcr & mask) != 0;
  const bool was_high = (chip.input_level & mask) != 0;
  if (level) {
    chip.input_level |= mask;
    if (level_triggered || !was_high) chip.irr |= mask;
  } else {
    chip.input_level &= ~mask;
    if (level_triggered) chip.irr &= ~mask;
  }
}

void Pic8259::intack(Chip& chip, int irq) {
  const uint8_t mask = static_cast<uint8_t>(1u << irq);
  if (chip.auto_eoi) {
    if (chip.rotate_on_auto_eoi) chip.priority_base = (irq + 1) & 7;
  } else {
    chip.isr |= mask;
  }
  // A level-triggered request stays in IRR while its line is high.
  const bool level_triggered = chip.level_triggered_all || (chip.elcr & mask) != 0;
  if (!level_triggered) chip.irr &= ~mask;
}

void Pic8259::update() {
  // The slave's INT output is the master's IRQ2 input.
  set_input(chips_[0], 2, requested_irq(chips_[1], false) >= 0);
  const bool intr = requested_irq(chips_[0], true) >= 0;
  if (intr != intr_) {
    intr_ = intr;
    if (on_intr_change_) on_intr_change_(intr);
  }
}

uint8_t Pic8259::acknowledge() {
  Chip& master = chips_[0];
  Chip& slave = chips_[1];
  uint8_t vector;
  const int irq = requested_irq(master, true);
  if (irq < 0) {
    vector = master.vector_base + 7;  // Spurious IRQ7: ISR untouched.
  } else {
    if (irq == 2) {
      const int slave_irq = requested_irq(slave, false);
      if (slave_irq >= 0) {
        intack(slave, slave_irq);
        vector = static_cast<uint8_t>(slave.vector_base + slave_irq);
      } else {
        vector = slave.vector_base + 7;  // Spurious IRQ15: master still acks IRQ2.
      }
    } else {
      vector = static_cast<uint8_t>(master.vector_base + irq);
    }
    intack(master, irq);
  }
  update();
  return vector;
}

void Pic8259::write_command(Chip& chip, uint8_t value) {
  if (value & 0x10) {  // ICW1
    const uint8_t elcr = chip.elcr;
    const uint8_t elcr_mask = chip.elcr_mask;
    const uint8_t input_level = chip.input_level;
    chip = Chip{};
    chip.elcr = elcr;
    chip.elcr_mask = elcr_mask;
    chip.input_level = input_level;
    chip.init_step = 1;
    chip.expect_icw4 = (value & 0x01) != 0;
    chip.single = (value & 0x02) != 0;
    chip.level_triggered_all = (value & 0x08) != 0;
    // A level input already high is a request again in level mode.
    chip.irr = chip.level_triggered_all ? chip.input_level : chip.input_level & chip.elcr;
  } else if (value & 0x08) {  // OCW3
    if (value & 0x04) chip.poll = true;
    if (value & 0x02) chip.read_isr = (value & 0x01) != 0;
    if (value & 0x40) chip.special_mask = (value & 0x20) != 0;
  } else {  // OCW2
    const unsigned command = value >> 5;
    switch (command) {
      case 0:  // Rotate in auto-EOI mode: clear.
      case 4:  // Rotate in auto-EOI mode: set.
        chip.rotate_on_auto_eoi = command == 4;
        break;
      case 1:    // Non-specific EOI.
      case 5: {  // Rotate on non-specific EOI.
        const int priority = priority_of(chip, chip.isr);
        if (priority != 8) {
          const int irq = (priority + chip.priority_base) & 7;
          chip.isr &= ~(1u << irq);
          if (command == 5) chip.priority_base = (irq + 1) & 7;
        }
        break;
      }
      case 3:  // Specific EOI.
        chip.isr &= ~(1u << (value & 7));
        break;
      case 6:  // Set priority: the given IRQ becomes the lowest.
        chip.priority_base = (value + 1) & 7;
        break;
      case 7:  // Rotate on specific EOI.
        chip.isr &= ~(1u << (value & 7));
        chip.priority_base = (value + 1) & 7;
        break;
      default:  // 2: no operation.
        break;
    }
  }
}

void Pic8259::write_data(Chip& chip, uint8_t value) {
  switch (chip.init_step) {
    case 0:  // OCW1
      chip.imr = value;
      break;
    case 1:  // ICW2
      chip.vector_base = value & 0xF8;
      chip.init_step = chip.single ? (chip.expect_icw4 ? 3 : 0) : 2;
      break;
    case 2:  // ICW3: the cascade wiring is fixed on a PC.
      chip.init_step = chip.expect_icw4 ? 3 : 0;
      break;
    default:  // ICW4
      chip.special_fully_nested = (value & 0x10) != 0;
      chip.auto_eoi = (value & 0x02) != 0;
      if ((value & 0x01) == 0) log_.note("pic: ICW4 asks for 8080 mode; using 8086 mode");
      chip.init_step = 0;
      break;
  }
}

uint8_t Pic8259::read_chip(Chip& chip, uint64_t offset) {
  if (chip.poll) {
    // Poll: the read is the INTA cycle, answering "1xxxx<irq>" or 0.
    chip.poll = false;
    const int irq = requested_irq(chip, is_master(chip));
    if (irq < 0) return 0;
    intack(chip, irq);
    return static_cast<uint8_t>(0x80 | irq);
  }
  if (offset == 0) return chip.read_isr ? chip.isr : chip.irr;
  return chip.imr;
}

std::string_view Pic8259::Ports::name() const {
  static constexpr std::string_view kNames[] = {"pic-master", "pic-slave", "pic-elcr"};
  return kNames[which_];
}

void Pic8259::Ports::read(uint64_t offset, std::span<uint8_t> data) {
  read_bytes(offset, kPortCount, data, [&](uint64_t port) -> uint8_t {
    if (which_ == 2) return pic_.chips_[port].elcr;
    const uint8_t value = pic_.read_chip(pic_.chips_[which_], port);
    pic_.update();
    return value;
  });
}

void Pic8259::Ports::write(uint64_t offset, std::span<const uint8_t> data) {
  write_bytes(offset, kPortCount, data, [&](uint64_t port, uint8_t value) {
    if (which_ == 2) {
      Chip& chip = pic_.chips_[port];
      chip.elcr = value & chip.elcr_mask;
    } else if (port == 0) {
      pic_.write_command(pic_.chips_[which_], value);
    } else {
      pic_.write_data(pic_.chips_[which_], value);
    }
    pic_.update();
  });
}

}  // namespace bt86
