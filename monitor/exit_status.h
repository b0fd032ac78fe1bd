// bt86's process exit codes, documented in --help and README.md.
//
// The isa-debug-exit port makes the process exit with (v << 1) | 1 for a
// guest write of v, exactly as QEMU does, so those codes are always odd.
// bt86's own codes are even, so a test can always tell them apart.
#pragma once

namespace bt86 {

enum class ExitStatus : int {
  kOk = 0,                  // Guest powered off, reset, or the user quit.
  kUsage = 2,               // Bad command line.
  kBadImage = 4,            // Kernel or initrd malformed, truncated or unsupported.
  kBackendUnavailable = 6,  // The chosen backend cannot run on this host.
  kGuestCrashed = 8,        // Triple fault / shutdown, or a guest state no CPU could continue from.
  kTimeout = 10,            // --timeout expired.
  kHostError = 12,          // An error of the host (out of memory, a failed system call).
};

inline int debug_exit_status(unsigned value) {
  return static_cast<int>(((value & 0xFF) << 1) | 1);
}

}  // namespace bt86
