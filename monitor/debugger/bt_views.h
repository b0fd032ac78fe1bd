// The BT-only debugger views: what the translator made of the guest and
// what the shadow MMU holds, formatted from a BtDebugTarget.
//
// translate shows, for the unit covering an address, each guest
// instruction with its classification (IDENT, compensated, callout) next to
// the host instructions emitted for it, the unit's host range, and every
// exit with its chaining state. pt joins the guest page walk (which works
// under any backend) with the shadow side when the target is BT.
#pragma once

#include <cstdint>
#include <string>

#include "monitor/debugger/guest_view.h"
#include "monitor/debugger/symbol_table.h"
#include "runtime/bt/bt_debug_target.h"

namespace bt86 {

std::string format_translation(BtDebugTarget& target, uint32_t linear, const SymbolTable& symbols);
// One line per live unit; filter keeps units whose symbol or EIP text
// contains it (empty: all).
std::string format_unit_list(BtDebugTarget& target, std::string_view filter,
                             const SymbolTable& symbols);
std::string format_traces(BtDebugTarget& target);
std::string format_spaces(BtDebugTarget& target);
// The adaptation log: per adapted store, its EIP and instruction, the
// trace faults that led there, why, and the units it retired and got.
std::string format_adaptations(BtDebugTarget& target, const SymbolTable& symbols);
// bt may be null (KVM): then only the guest side is shown.
std::string format_page_walk(const GuestView& view, const CpuState& cpu, uint32_t linear,
                             BtDebugTarget* bt);

}  // namespace bt86
