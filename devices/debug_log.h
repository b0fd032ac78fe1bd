// The VMM's debug log: where the machine notes what a guest did that the
// user may want to know about but that is not an error (an unclaimed port, an
// unsupported device mode). It is owned by the Machine and handed to the
// parts that write to it; disabled, it costs one branch per call site.
#pragma once

#include <cstdio>
#include <string_view>

#include <fmt/format.h>

namespace bt86 {

class DebugLog {
 public:
  DebugLog() = default;
  // Does not take ownership; out may be nullptr (disabled).
  explicit DebugLog(std::FILE* out) : out_(out) {}

  bool enabled() const { return out_ != nullptr; }

  template <typename... Args>
  void note(fmt::format_string<Args...> format, Args&&... args) {
    if (!out_) return;
    fmt::print(out_, "bt86: ");
    fmt::print(out_, format, std::forward<Args>(args)...);
    fmt::print(out_, "\n");
    std::fflush(out_);
  }

 private:
  std::FILE* out_ = nullptr;
};

}  // namespace bt86
