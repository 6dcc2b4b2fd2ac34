#include "engine/destination.h"

#include <gtest/gtest.h>

#include <csignal>
#include <memory>

#include "sim/emulated_kernel.h"
#include "sim/vfio_device.h"
#include "tests/engine/migration_rig.h"
#include "tests/vm/kvm_test_support.h"

namespace converge {
namespace {

class DestinationTest : public ::testing::Test {
 protected:
  void SetUp() override { std::signal(SIGPIPE, SIG_IGN); }
};

// A stream whose device list names other devices is refused before any
// byte is applied, naming both, and the RESUMING sessions are closed.
TEST_F(DestinationTest, RefusesStreamWithOtherDeviceNames) {
  CONVERGE_SKIP_WITHOUT_KVM();
  testing::RigOptions r;
  r.ram_bytes = 8 << 20;
  r.num_devices = 1;
  r.device.precopy_initial_bytes = 64 << 10;
  r.device.stop_copy_bytes = 64 << 10;
  auto rig = testing::MigrationRig::Create(r);
  ASSERT_TRUE(rig.ok()) << rig.status().ToString();
  MemoryTransport out;
  EngineOptions o;
  o.policy.max_iterations = 2;
  o.policy.on_limit = OnLimit::kForceSwitchover;
  auto engine = (*rig)->NewEngine(out, o);
  ASSERT_TRUE(engine.ok());
  ASSERT_TRUE((*rig)->RunSource(**engine).ok());
  ASSERT_TRUE((*rig)->vm().Resume().ok());

  sim::EmulatedKernel kernel;
  auto dev = sim::EmulatedVfioDevice::Create(kernel, {});
  const int fd = kernel.Install(dev);
  MemoryTransport in(out.data());
  std::vector<uint8_t> ram(8 << 20);
  auto dest = Destination::Create(kernel, Clock::Monotonic(), in);
  ASSERT_TRUE(dest.ok());
  ASSERT_TRUE((*dest)->AddRegion({0, ram.size(), ram.data()}).ok());
  ASSERT_TRUE((*dest)->AddDevice("gpu", fd).ok());
  Result<DestinationResult> res = (*dest)->Run();
  ASSERT_FALSE(res.ok());
  EXPECT_NE(res.status().message().find("\"dev0\""), std::string::npos)
      << res.status().ToString();
  EXPECT_NE(res.status().message().find("\"gpu\""), std::string::npos);
  EXPECT_NE(dev->state(), sim::MigState::kResuming);
  EXPECT_EQ((*dest)->device(0).data_fd(), -1);
  EXPECT_FALSE((*dest)->Run().ok()) << "Run twice";
}

TEST_F(DestinationTest, TruncatedStreamFailsAndStopsDevices) {
  CONVERGE_SKIP_WITHOUT_KVM();
  testing::RigOptions r;
  r.ram_bytes = 8 << 20;
  r.num_devices = 1;
  r.device.precopy_initial_bytes = 64 << 10;
  r.device.stop_copy_bytes = 64 << 10;
  auto rig = testing::MigrationRig::Create(r);
  ASSERT_TRUE(rig.ok()) << rig.status().ToString();
  MemoryTransport out;
  EngineOptions o;
  o.policy.max_iterations = 1;
  o.policy.on_limit = OnLimit::kForceSwitchover;
  auto engine = (*rig)->NewEngine(out, o);
  ASSERT_TRUE(engine.ok());
  ASSERT_TRUE((*rig)->RunSource(**engine).ok());
  ASSERT_TRUE((*rig)->vm().Resume().ok());

  std::vector<uint8_t> cut(out.data().begin(),
                           out.data().begin() + out.data().size() / 2);
  MemoryTransport in(cut);
  auto dest = (*rig)->NewDestination(in);
  ASSERT_TRUE(dest.ok());
  Result<DestinationResult> res = (*dest)->Run();
  EXPECT_FALSE(res.ok());
  EXPECT_NE((*dest)->device(0).state(), MigState::kResuming);
  EXPECT_EQ((*dest)->device(0).data_fd(), -1);
}

TEST_F(DestinationTest, AddAfterPrepareIsRefused) {
  sim::EmulatedKernel kernel;
  MemoryTransport in;
  auto dest = Destination::Create(kernel, Clock::Monotonic(), in);
  ASSERT_TRUE(dest.ok());
  std::vector<uint8_t> ram(4096);
  EXPECT_FALSE((*dest)->AddRegion({0, 0, ram.data()}).ok());
  ASSERT_TRUE((*dest)->Prepare().ok());
  EXPECT_FALSE((*dest)->AddRegion({0, 4096, ram.data()}).ok());
  EXPECT_FALSE((*dest)->Prepare().ok());
}

}  // namespace
}  // namespace converge
