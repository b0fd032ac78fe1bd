// The KVM host check, backend selection and the console's escape handling.
#include <unistd.h>

#include <gtest/gtest.h>

#include "monitor/backend.h"
#include "monitor/console.h"
#include "monitor/kvm_host_check.h"

namespace bt86 {
namespace {

TEST(KvmHostCheck, ReadsHardwareVirtualizationFromCpuinfoFlags) {
  EXPECT_TRUE(cpuinfo_has_hardware_virtualization("processor\t: 0\nflags\t\t: fpu vme svm sse\n"));
  EXPECT_TRUE(cpuinfo_has_hardware_virtualization("flags\t\t: fpu vmx\n"));
  EXPECT_FALSE(cpuinfo_has_hardware_virtualization("flags\t\t: fpu vmxx svm_lock sse\n"));
  EXPECT_FALSE(cpuinfo_has_hardware_virtualization("model name\t: svm vmx\nflags\t: fpu\n"));
}

TEST(KvmHostCheck, FindsKvmPvmInModules) {
  EXPECT_TRUE(modules_list_kvm_pvm("kvm 1 0 - Live 0x0\nkvm_pvm 16384 0 - Live 0x0\n"));
  EXPECT_FALSE(modules_list_kvm_pvm("kvm_amd 1 0 - Live 0x0\nkvm 1 1 kvm_amd, Live 0x0\n"));
  EXPECT_FALSE(modules_list_kvm_pvm(""));
}

TEST(KvmHostCheck, MissingDeviceIsNamed) {
  const KvmHostReport r = check_kvm_host({.device = "/nonexistent/kvm"});
  EXPECT_EQ(r.status, KvmHostStatus::kNoDevice);
  EXPECT_FALSE(r.usable());
  EXPECT_NE(r.reason.find("/nonexistent/kvm does not exist"), std::string::npos) << r.reason;
}

TEST(KvmHostCheck, DeviceThatIsNotKvmFailsTheApiVersion) {
  const KvmHostReport r = check_kvm_host({.device = "/dev/null"});
  EXPECT_EQ(r.status, KvmHostStatus::kBadApiVersion);
  EXPECT_NE(r.reason.find("KVM_GET_API_VERSION"), std::string::npos) << r.reason;
}

TEST(BackendRegistry, BtRunsEverywhereAndOtherNamesEndInAClearError) {
  EXPECT_EQ(make_backend("bt", {})->name(), "bt");
  try {
    make_backend("qemu", {});
    FAIL();
  } catch (const BackendUnavailable& e) {
    EXPECT_NE(std::string(e.what()).find("unknown backend"), std::string::npos);
  }
  EXPECT_THROW(make_backend("kvm", {}), BackendUnavailable);
}

class ConsoleEscapes : public testing::Test {
 protected:
  ConsoleEscapes() { EXPECT_EQ(pipe(out_), 0); }
  ~ConsoleEscapes() override {
    close(out_[0]);
    close(out_[1]);
  }
  int out_[2];
};

TEST_F(ConsoleEscapes, CtrlAXQuitsAndCtrlACtrlASendsCtrlA) {
  Console console(out_[0], out_[1]);
  EXPECT_FALSE(console.interactive());
  std::vector<uint8_t> to_guest;
  const std::vector<uint8_t> typed = {'a', 0x01, 0x01, 'b', 0x01, 'z', 'c'};
  EXPECT_FALSE(console.interpret(typed, to_guest));
  EXPECT_EQ(to_guest, (std::vector<uint8_t>{'a', 0x01, 'b', 'c'}));
  to_guest.clear();
  // An escape split across reads still works.
  EXPECT_FALSE(console.interpret(std::vector<uint8_t>{'d', 0x01}, to_guest));
  EXPECT_TRUE(console.interpret(std::vector<uint8_t>{'x'}, to_guest));
  EXPECT_EQ(to_guest, (std::vector<uint8_t>{'d'}));
}

TEST_F(ConsoleEscapes, CtrlAHPrintsHelp) {
  Console console(out_[0], out_[1]);
  std::vector<uint8_t> to_guest;
  EXPECT_FALSE(console.interpret(std::vector<uint8_t>{0x01, 'h'}, to_guest));
  EXPECT_TRUE(to_guest.empty());
  char buffer[512] = {};
  ASSERT_GT(read(out_[0], buffer, sizeof buffer - 1), 0);
  EXPECT_NE(std::string(buffer).find("C-a x"), std::string::npos);
}

TEST_F(ConsoleEscapes, PipesPassEveryByteAndEofOnlyEndsInput) {
  int in[2];
  ASSERT_EQ(pipe(in), 0);
  Console console(in[0], out_[1]);
  ASSERT_EQ(write(in[1], "\x01x", 2), 2);
  close(in[1]);
  std::vector<uint8_t> to_guest;
  EXPECT_FALSE(console.read_input(to_guest));
  EXPECT_EQ(to_guest, (std::vector<uint8_t>{0x01, 'x'}));
  EXPECT_FALSE(console.read_input(to_guest));
  EXPECT_EQ(console.input_fd(), -1);
  close(in[0]);
}

}  // namespace
}  // namespace bt86
