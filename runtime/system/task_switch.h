// Hardware task switching (Vol. 3A 7.3): through a task gate in the IDT
// (Linux i386 handles #DF this way), far jmp/call to a TSS or task gate, and
// iret with NT=1 back through the link field.
//
// Only 32-bit TSSs are switched; a 16-bit TSS on either side, or a new task
// with EFLAGS.VM=1, is a kShutdown with a message (bt86 emulates neither). The sequence:
// check the new TSS, save the current registers into the current TSS, fix
// the busy bits and the link/NT pair as the source demands, then load the
// new task. Faults found while loading the new task's segments (#TS/#NP/#SS)
// are raised in the context of the new task, as on hardware; its segment
// registers not yet loaded are then null.
#pragma once

#include <cstdint>

#include "runtime/system/descriptor_tables.h"
#include "runtime/system/system_context.h"

namespace bt86 {

enum class TaskSwitchSource { kJump, kCall, kInterrupt, kIret };

// The TSS descriptor a task gate, far jmp/call or iret names: GDT only, a
// TSS that is available (busy for kIret), present. Type errors are #GP for
// jmp/call/interrupt and #TS for iret; not present is #NP.
SystemOutcome fetch_task_descriptor(SystemContext& ctx, uint16_t selector, TaskSwitchSource source,
                                    uint32_t ext, DescriptorSlot* slot);

// Switches to the task of slot (checked by fetch_task_descriptor). The
// current task resumes at return_eip.
SystemOutcome switch_task(SystemContext& ctx, uint16_t selector, DescriptorSlot& slot,
                          TaskSwitchSource source, uint32_t return_eip, uint32_t ext);

// iret with EFLAGS.NT=1: back to the task in the current TSS's link field.
SystemOutcome return_from_nested_task(SystemContext& ctx, uint32_t return_eip);

}  // namespace bt86
