/* pit_irq: the PIC and the PIT deliver timer interrupts. Programs the
 * 8259A pair (ICW1-4, vectors 0x20-0x2f) and PIT channel 0 in mode 2 at
 * about 1 kHz, then checks that: no interrupt arrives while IF=0 or while
 * IRQ0 is masked at the PIC; "sti; hlt" sleeps until an interrupt and
 * every wake-up comes with at least one tick; the handler sees IRQ0 in
 * service and the EOI clears it. Nothing printed depends on timing: the
 * waits count PIT counter wrap-arounds, not time. */
#include "tests/guests/lib/guest.h"
#include "tests/guests/lib/x86.h"

#define TIMER_HZ 1000
#define TICKS_WANTED 100

static volatile uint32_t ticks;
static volatile uint32_t ticks_with_if_clear;
static volatile bool first_recorded;
static volatile uint8_t isr_in_handler;
static volatile uint8_t isr_after_eoi;

bool guest_trap(struct int_frame* frame) {
  if (frame->vector != 0x20) return false;
  if ((frame->eflags & EFLAGS_IF) == 0) ++ticks_with_if_clear;
  if (!first_recorded) isr_in_handler = pic_read_isr_master();
  ++ticks;
  pic_eoi(0);
  if (!first_recorded) {
    isr_after_eoi = pic_read_isr_master();
    first_recorded = true;
  }
  return true;
}

/* Busy-waits for n wrap-arounds of PIT channel 0's down-counter (one per
 * timer period) and checks every count read is within the reload range. */
static bool wait_pit_wraps(uint32_t n, uint16_t reload) {
  bool in_range = true;
  uint16_t previous = pit_read_count();
  for (uint32_t wraps = 0; wraps < n;) {
    uint16_t now = pit_read_count();
    if (now > reload) in_range = false;
    if (now > previous) ++wraps;
    previous = now;
  }
  return in_range;
}

void guest_main(uint32_t magic, const struct multiboot_info* mbi) {
  (void)magic;
  (void)mbi;
  const uint16_t reload = 1193182 / TIMER_HZ;
  pic_init(0x20);
  pit_start_periodic(TIMER_HZ);
  pic_unmask(0);
  kprintf("PIC at 0x20, PIT channel 0 mode 2 at %u Hz\n", TIMER_HZ);

  check("PIT count stays within the reload value", wait_pit_wraps(20, reload));
  check_eq("no interrupt while IF=0 for 20 periods", ticks, 0);

  uint32_t wakeups_without_tick = 0;
  while (ticks < TICKS_WANTED) {
    uint32_t before = ticks;
    sti_hlt();
    cli();
    if (ticks == before) ++wakeups_without_tick;
  }
  kprintf("hlt loop done\n");
  check("at least 100 timer interrupts counted", ticks >= TICKS_WANTED);
  check_eq("every hlt wake-up came with a tick", wakeups_without_tick, 0);
  check_eq("interrupts arrived only with IF=1", ticks_with_if_clear, 0);
  check_eq("IRQ0 in service inside the handler", isr_in_handler & 1, 1);
  check_eq("EOI cleared the in-service bit", isr_after_eoi & 1, 0);

  pic_mask(0);
  uint32_t masked_start = ticks;
  sti();
  wait_pit_wraps(20, reload);
  cli();
  check_eq("no interrupt with IRQ0 masked at the PIC", ticks - masked_start, 0);
  guest_finish("pit_irq");
}
