// What the host kernel really has mapped: the tests of host windows check
// protections in /proc/self/maps rather than trusting the code under test.
#pragma once

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>

namespace bt86 {

// "r--", "rw-", "---", or "" if addr is not mapped at all.
inline std::string host_protection(const void* addr) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  const auto a = reinterpret_cast<uintptr_t>(addr);
  while (std::getline(maps, line)) {
    uintptr_t lo = 0, hi = 0;
    char perms[5] = {};
    if (std::sscanf(line.c_str(), "%lx-%lx %4s", &lo, &hi, perms) == 3 && a >= lo && a < hi) {
      return std::string(perms, 3);
    }
  }
  return "";
}

}  // namespace bt86
