#include "runtime/bt/nonglobal_units.h"

#include <algorithm>

#include "translator/translation_mode.h"

namespace bt86 {

void NonGlobalUnits::forget_if_flushed() {
  if (cache_.flush_count() == flush_count_) return;
  groups_.clear();
  open_.clear();
  open_by_page_.clear();
  parked_.clear();
  spanning_.clear();
  flush_count_ = cache_.flush_count();
}

bool NonGlobalUnits::open(TranslationUnit& unit) {
  forget_if_flushed();
  if (unit.code.size() != 1) return open_spanning(unit);
  const CodeRange& code = unit.code.front();
  const bool user = TranslationMode::cpl_of_key(unit.key.mode) == 3;
  const GroupKey key = key_of(code.linear_page, code.physical >> 12, user);
  auto [it, added] = groups_.try_emplace(key);
  Group& g = it->second;
  if (added) {
    g.linear_page = code.linear_page;
    g.frame = code.physical >> 12;
    g.user = user;
  }
  if (unit.guard_chunk == kNoGuardChunk) {
    if (g.chunks.empty() || !cache_.join_guard_chunk(g.chunks.back(), unit)) {
      const uint32_t chunk = cache_.new_guard_chunk(kChunkCapacity);
      if (chunk == kNoGuardChunk) return false;
      g.chunks.push_back(chunk);
      cache_.join_guard_chunk(chunk, unit);
      if (g.open) cache_.set_guard_chunk(chunk, true);
    }
  }
  if (!g.open) open_group(key);
  return true;
}

bool NonGlobalUnits::open_spanning(TranslationUnit& unit) {
  if (unit.guard_chunk == kNoGuardChunk) {
    const uint32_t chunk = cache_.new_guard_chunk(1);
    if (chunk == kNoGuardChunk) return false;
    cache_.join_guard_chunk(chunk, unit);
  }
  if (!cache_.guard_chunk_open(unit.guard_chunk)) {
    cache_.set_guard_chunk(unit.guard_chunk, true);
    spanning_.push_back(&unit);
  }
  return true;
}

void NonGlobalUnits::open_group(GroupKey key) {
  Group& g = groups_.at(key);
  // The guest remapped the page without a TLB flush, and the dispatcher's
  // walk found a unit in the new frame: the group of the old one is what a
  // stale TLB entry would run, so it may go.
  if (auto other = open_by_page_.find(page_of(g.linear_page, g.user));
      other != open_by_page_.end()) {
    close_group(other->second, /*park=*/false);
  }
  for (uint32_t chunk : g.chunks) cache_.set_guard_chunk(chunk, true);
  g.open = true;
  g.open_index = open_.size();
  open_.push_back(key);
  open_by_page_[page_of(g.linear_page, g.user)] = key;
}

void NonGlobalUnits::drop_from_open(Group& g) {
  g.open = false;
  open_by_page_.erase(page_of(g.linear_page, g.user));
  const GroupKey last = open_.back();
  open_[g.open_index] = last;
  groups_.at(last).open_index = g.open_index;
  open_.pop_back();
}

void NonGlobalUnits::close_group(GroupKey key, bool park) {
  Group& g = groups_.at(key);
  for (uint32_t chunk : g.chunks) cache_.set_guard_chunk(chunk, false);
  drop_from_open(g);
  if (park && !g.parked) {
    g.parked = true;
    g.flushes_parked = 0;
    parked_.push_back(key);
  }
}

void NonGlobalUnits::promote(GroupKey key) {
  Group& g = groups_.at(key);
  for (TranslationUnit* u : cache_.units_on_linear_page(g.linear_page)) {
    if (std::find(g.chunks.begin(), g.chunks.end(), u->guard_chunk) != g.chunks.end()) {
      u->global = true;
    }
  }
  drop_from_open(g);
  if (g.parked) std::erase(parked_, key);
  groups_.erase(key);
  ++pages_promoted_;
}

void NonGlobalUnits::close_spanning() {
  for (TranslationUnit* u : spanning_) cache_.set_guard_chunk(u->guard_chunk, false);
  spanning_.clear();
}

void NonGlobalUnits::close_all() {
  forget_if_flushed();
  while (!open_.empty()) close_group(open_.back(), /*park=*/false);
  for (GroupKey key : parked_) groups_.at(key).parked = false;
  parked_.clear();
  close_spanning();
}

void NonGlobalUnits::close_page(uint32_t linear_page) {
  forget_if_flushed();
  for (bool user : {false, true}) {
    auto it = open_by_page_.find(page_of(linear_page, user));
    if (it == open_by_page_.end()) continue;
    close_group(it->second, /*park=*/false);
    ++page_closes_;
  }
  std::erase_if(parked_, [&](GroupKey key) {
    Group& g = groups_.at(key);
    if (g.linear_page != linear_page) return false;
    g.parked = false;
    return true;
  });
  std::erase_if(spanning_, [&](TranslationUnit* u) {
    const bool on_page = std::any_of(u->code.begin(), u->code.end(), [&](const CodeRange& r) {
      return r.linear_page == linear_page;
    });
    if (on_page) cache_.set_guard_chunk(u->guard_chunk, false);
    return on_page;
  });
}

}  // namespace bt86
