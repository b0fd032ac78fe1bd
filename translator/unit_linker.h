// Linking and unlinking of direct exits: every patch of a jump inside the
// translation cache happens here.
//
// A direct exit is a jmp/jcc rel32 whose displacement ends at patch_site.
// Unlinked, it points at the exit's own stub (which leaves the cache with the
// guest target); linked, at the target unit's entry. The target unit records
// the exit in incoming_links so that invalidating it can restore the stubs.
// Patching happens only while no translated code runs (single vCPU, from the
// dispatcher), or from a signal handler on the vCPU thread, which has
// stopped it (TranslationCache::break_loop_at), so plain stores through the
// writable view suffice; the return from the handler serializes.
#pragma once

#include <vector>

#include "translator/code_memory.h"
#include "translator/translation_unit.h"

namespace bt86 {

// destination: the target's entry, its guarded entry or its loop entry.
void link_exit(CodeMemory& memory, uint32_t exit_id, ExitRecord& exit, TranslationUnit& target,
               uint64_t destination);
// Points a linked exit somewhere else inside the same target.
void relink_exit(CodeMemory& memory, ExitRecord& exit, uint64_t destination);
void unlink_incoming(CodeMemory& memory, std::vector<ExitRecord>& exits, TranslationUnit& target);

}  // namespace bt86
