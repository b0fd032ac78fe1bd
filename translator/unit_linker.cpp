#include "translator/unit_linker.h"

namespace bt86 {
namespace {

void point_exit_at(CodeMemory& memory, const ExitRecord& exit, uint64_t destination) {
  memory.write_u32(exit.patch_site - 4, static_cast<uint32_t>(destination - exit.patch_site));
}

}  // namespace

void link_exit(CodeMemory& memory, uint32_t exit_id, ExitRecord& exit, TranslationUnit& target,
               uint64_t destination) {
  point_exit_at(memory, exit, destination);
  exit.linked_to = destination;
  target.incoming_links.push_back(exit_id);
}

void relink_exit(CodeMemory& memory, ExitRecord& exit, uint64_t destination) {
  point_exit_at(memory, exit, destination);
  exit.linked_to = destination;
}

void unlink_incoming(CodeMemory& memory, std::vector<ExitRecord>& exits, TranslationUnit& target) {
  for (uint32_t id : target.incoming_links) {
    ExitRecord& exit = exits[id];
    if (!target.is_entry(exit.linked_to)) continue;
    point_exit_at(memory, exit, exit.stub);
    exit.linked_to = 0;
  }
  target.incoming_links.clear();
}

}  // namespace bt86
