#include <gtest/gtest.h>

#include "monitor/cli.h"
#include "monitor/exit_status.h"

namespace bt86 {
namespace {

TEST(DebugCommandLineTest, DebugTakesTheMachineOptionsOfRunAndItsOwn) {
  const ParsedCommandLine p =
      parse_command_line({"debug", "--kernel", "/dev/null", "--mem", "64M", "--backend", "kvm",
                          "--symbols", "/dev/null", "--gdb", "1234"});
  ASSERT_TRUE(p.debug.has_value());
  EXPECT_FALSE(p.run.has_value());
  EXPECT_EQ(p.debug->machine.kernel_path, "/dev/null");
  EXPECT_EQ(p.debug->machine.ram_size, 64ull << 20);
  EXPECT_EQ(p.debug->machine.backend, "kvm");
  EXPECT_EQ(p.debug->symbols, "/dev/null");
  EXPECT_EQ(p.debug->gdb_port, 1234);
  EXPECT_FALSE(p.debug->script.has_value());
}

TEST(DebugCommandLineTest, ScriptAndGdbExcludeEachOther) {
  const ParsedCommandLine p = parse_command_line(
      {"debug", "--kernel", "/dev/null", "--script", "/dev/null", "--gdb", "1234"});
  EXPECT_FALSE(p.debug.has_value());
  EXPECT_EQ(p.exit_status, static_cast<int>(ExitStatus::kUsage));
}

TEST(DebugCommandLineTest, MissingSymbolFileIsAUsageError) {
  const ParsedCommandLine p = parse_command_line(
      {"debug", "--kernel", "/dev/null", "--symbols", "/nonexistent/System.map"});
  EXPECT_FALSE(p.debug.has_value());
  EXPECT_EQ(p.exit_status, static_cast<int>(ExitStatus::kUsage));
}

TEST(DebugCommandLineTest, BadGdbPortIsAUsageError) {
  const ParsedCommandLine p =
      parse_command_line({"debug", "--kernel", "/dev/null", "--gdb", "70000"});
  EXPECT_FALSE(p.debug.has_value());
  EXPECT_EQ(p.exit_status, static_cast<int>(ExitStatus::kUsage));
}

}  // namespace
}  // namespace bt86
