// Receiver faults: a destination device that rejects its stream (RESUMING
// -> STOP fails). The destination reports which device; the source, whose
// stream completed, is resumed by its VMM and loses nothing.

#include <gtest/gtest.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>

#include "tests/fault/fault_rig.h"
#include "tests/vm/kvm_test_support.h"

namespace converge {
namespace {

using sim::MigState;
using testing::FaultEngineOptions;
using testing::FaultRigOptions;

class FaultReceiverTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override { std::signal(SIGPIPE, SIG_IGN); }
};

TEST_P(FaultReceiverTest, ResumingDeviceRejectsItsStream) {
  CONVERGE_SKIP_WITHOUT_KVM();
  const bool enter_error = GetParam();
  auto rig = testing::NewRig(FaultRigOptions());
  ASSERT_NE(rig, nullptr);
  MemoryTransport out;
  auto engine = rig->NewEngine(rig->kernel(), out, FaultEngineOptions(), {});
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  Result<SwitchoverStats> s = rig->RunSource(**engine);
  ASSERT_TRUE(s.ok()) << s.status().ToString();

  MemoryTransport in(out.data());
  auto dest = rig->NewDestination(in);
  ASSERT_TRUE(dest.ok()) << dest.status().ToString();
  rig->destination_device(1).InjectArcFailure(MigState::kResuming,
                                              MigState::kStop, EIO,
                                              enter_error);
  Result<DestinationResult> d = (*dest)->Run();
  ASSERT_FALSE(d.ok()) << "the destination ignored a rejected state";
  const std::string why = d.status().ToString();
  std::printf("[ outcome  ] destination: %s\n", why.c_str());
  EXPECT_NE(why.find("dev1"), std::string::npos) << why;
  EXPECT_EQ(why.find("dev0"), std::string::npos) << why;
  EXPECT_NE(rig->destination_device(1).state(), MigState::kResuming);
  EXPECT_EQ(rig->destination_device(0).state(), MigState::kStop)
      << "the healthy device accepted its state";
  EXPECT_TRUE(rig->destination_device(0).restored_ok());

  ASSERT_TRUE(rig->vm().Resume().ok());
  testing::ExpectSourceRecovers(*rig, std::move(*engine));
}

INSTANTIATE_TEST_SUITE_P(Recovery, FaultReceiverTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& p) {
                           return p.param ? std::string("DeviceEntersError")
                                          : std::string("DeviceStaysResuming");
                         });

}  // namespace
}  // namespace converge
