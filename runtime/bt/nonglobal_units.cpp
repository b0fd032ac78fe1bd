#include "runtime/bt/nonglobal_units.h"

namespace bt86 {

void NonGlobalUnits::forget_if_flushed() {
  if (cache_.flush_count() == flush_count_) return;
  opened_.clear();
  flush_count_ = cache_.flush_count();
}

void NonGlobalUnits::open(TranslationUnit& unit) {
  forget_if_flushed();
  if (unit.guard_open) return;
  cache_.set_guard(unit, true);
  opened_.push_back(unit.id);
}

void NonGlobalUnits::close_all() {
  forget_if_flushed();
  for (uint32_t id : opened_) {
    TranslationUnit& unit = cache_.unit(id);
    if (unit.guard_open) cache_.set_guard(unit, false);
  }
  opened_.clear();
}

void NonGlobalUnits::close_page(uint32_t linear_page) {
  for (TranslationUnit* unit : cache_.units_on_linear_page(linear_page)) {
    if (!unit->guard_open) continue;
    cache_.set_guard(*unit, false);
    ++page_closes_;
  }
}

void NonGlobalUnits::open_page(uint32_t linear_page, const Validity& valid) {
  for (TranslationUnit* unit : cache_.units_on_linear_page(linear_page)) {
    if (unit->global || unit->guard_open || !valid(*unit)) continue;
    open(*unit);
    ++guards_reopened_;
  }
}

}  // namespace bt86
