#include "monitor/cli.h"

#include <gtest/gtest.h>

#include "monitor/exit_status.h"

namespace bt86 {
namespace {

constexpr int kUsage = static_cast<int>(ExitStatus::kUsage);

TEST(CommandLine, RunWithEveryOption) {
  const ParsedCommandLine p =
      parse_command_line({"run", "--kernel", "vmlinuz", "--initrd", "initrd.gz", "--append",
                          "console=ttyS0 quiet", "--mem", "1G", "--backend", "kvm", "--timeout",
                          "30", "--debug-log", "log.txt", "--allow-software-kvm"});
  ASSERT_TRUE(p.run.has_value()) << p.err;
  const MachineConfig& c = *p.run;
  EXPECT_EQ(c.kernel_path, "vmlinuz");
  EXPECT_EQ(c.initrd_path, "initrd.gz");
  EXPECT_EQ(c.cmdline, "console=ttyS0 quiet");
  EXPECT_EQ(c.ram_size, 1ull << 30);
  EXPECT_EQ(c.backend, "kvm");
  EXPECT_EQ(c.timeout_seconds, 30.0);
  EXPECT_EQ(c.debug_log_path, "log.txt");
  EXPECT_TRUE(c.allow_software_kvm);
}

TEST(CommandLine, Defaults) {
  const ParsedCommandLine p = parse_command_line({"run", "--kernel", "k"});
  ASSERT_TRUE(p.run.has_value()) << p.err;
  EXPECT_EQ(p.run->ram_size, 256ull << 20);
  EXPECT_EQ(p.run->backend, "bt");
  EXPECT_FALSE(p.run->initrd_path.has_value());
  EXPECT_FALSE(p.run->timeout_seconds.has_value());
  EXPECT_FALSE(p.run->allow_software_kvm);
}

TEST(CommandLine, MissingKernelIsAUsageError) {
  const ParsedCommandLine p = parse_command_line({"run"});
  EXPECT_FALSE(p.run.has_value());
  EXPECT_EQ(p.exit_status, kUsage);
  EXPECT_NE(p.err.find("--kernel"), std::string::npos) << p.err;
}

TEST(CommandLine, BadMemorySizesAreUsageErrors) {
  for (const char* mem : {"8M", "4G", "lots", "12Q", ""}) {
    const ParsedCommandLine p = parse_command_line({"run", "--kernel", "k", "--mem", mem});
    EXPECT_FALSE(p.run.has_value()) << mem;
    EXPECT_EQ(p.exit_status, kUsage) << mem;
    EXPECT_NE(p.err.find("--mem"), std::string::npos) << p.err;
  }
}

TEST(CommandLine, UnknownBackendOrOptionIsAUsageError) {
  EXPECT_EQ(parse_command_line({"run", "--kernel", "k", "--backend", "xen"}).exit_status, kUsage);
  EXPECT_EQ(parse_command_line({"run", "--kernel", "k", "--frobnicate"}).exit_status, kUsage);
  EXPECT_EQ(parse_command_line({"run", "--kernel", "k", "--timeout", "-1"}).exit_status, kUsage);
  EXPECT_EQ(parse_command_line({"fly"}).exit_status, kUsage);
  EXPECT_EQ(parse_command_line({}).exit_status, kUsage);
}

TEST(CommandLine, HelpListsEveryExitCode) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--help"}, std::vector<std::string>{"run", "--help"}}) {
    const ParsedCommandLine p = parse_command_line(args);
    EXPECT_FALSE(p.run.has_value());
    EXPECT_EQ(p.exit_status, 0);
    for (const char* code :
         {"  0 ", "  2 ", "  4 ", "  6 ", "  8 ", "  10 ", "  12 ", "(v << 1) | 1"}) {
      EXPECT_NE(p.out.find(code), std::string::npos) << code << "\n" << p.out;
    }
  }
}

TEST(CommandLine, Version) {
  const ParsedCommandLine p = parse_command_line({"--version"});
  EXPECT_EQ(p.exit_status, 0);
  EXPECT_NE(p.out.find("bt86"), std::string::npos);
}

TEST(RunExitStatus, MapsEveryWayARunEnds) {
  std::string message;
  using K = VcpuExit::Kind;
  EXPECT_EQ(run_exit_status({K::kDebugExit, 0x43, ""}, std::nullopt, message), 0x43);
  EXPECT_EQ(run_exit_status({K::kReset, 0, ""}, std::nullopt, message), 0);
  EXPECT_NE(message.find("reset"), std::string::npos);
  EXPECT_EQ(run_exit_status({K::kPowerOff, 0, ""}, std::nullopt, message), 0);
  EXPECT_EQ(run_exit_status({K::kTripleFault, 0, ""}, std::nullopt, message),
            static_cast<int>(ExitStatus::kGuestCrashed));
  EXPECT_EQ(run_exit_status({K::kError, 0, "boom"}, std::nullopt, message),
            static_cast<int>(ExitStatus::kHostError));
  EXPECT_NE(message.find("boom"), std::string::npos);
  EXPECT_EQ(run_exit_status({K::kStopRequested, 0, ""}, StopRequest{StopRequest::Kind::kTimeout},
                            message),
            static_cast<int>(ExitStatus::kTimeout));
  EXPECT_EQ(run_exit_status({K::kStopRequested, 0, ""},
                            StopRequest{StopRequest::Kind::kDebugExit, 7}, message),
            7);
  EXPECT_EQ(run_exit_status({K::kStopRequested, 0, ""}, StopRequest{StopRequest::Kind::kUserQuit},
                            message),
            0);
}

}  // namespace
}  // namespace bt86
