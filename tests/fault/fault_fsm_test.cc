// Device FSM faults: a SET failing on each arc the engine takes, a device
// that goes to ERROR, and one of several devices failing while the others
// are already in PRE_COPY_P2P. Each either completes and verifies or
// aborts naming the device and the arc, and the source recovers.

#include <gtest/gtest.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "tests/fault/fault_rig.h"
#include "tests/vm/kvm_test_support.h"

namespace converge {
namespace {

using sim::MigState;
using testing::FaultEngineOptions;
using testing::FaultRigOptions;
using testing::FaultRun;

struct ArcFault {
  std::string name;
  MigState from, to;
  bool enter_error = false;
  int num_devices = 2;
  int device = 1;          // the device that fails
  bool completes = false;  // the migration still verifies
};

std::vector<ArcFault> ArcFaults() {
  return {
      {"RunningToPreCopy", MigState::kRunning, MigState::kPreCopy},
      {"PreCopyToPreCopyP2p", MigState::kPreCopy, MigState::kPreCopyP2p},
      {"PreCopyP2pToStopCopy", MigState::kPreCopyP2p, MigState::kStopCopy},
      // The stream ends with the devices in STOP_COPY: the arc is taken by
      // the Cancel() that resumes the source, whose recovery absorbs it.
      {"StopCopyToStop", MigState::kStopCopy, MigState::kStop, false, 2, 1,
       true},
      {"PreCopyToErrorState", MigState::kPreCopy, MigState::kPreCopyP2p,
       true},
      {"StopCopyToErrorState", MigState::kPreCopyP2p, MigState::kStopCopy,
       true},
      // Devices go to P2P in order: 0 and 1 are there when 2 fails.
      {"ThirdOfThreeWhileOthersInP2p", MigState::kPreCopy,
       MigState::kPreCopyP2p, false, 3, 2},
  };
}

class FaultFsmTest : public ::testing::TestWithParam<ArcFault> {
 protected:
  void SetUp() override { std::signal(SIGPIPE, SIG_IGN); }
};

TEST_P(FaultFsmTest, AbortsNamingTheDeviceOrVerifies) {
  CONVERGE_SKIP_WITHOUT_KVM();
  const ArcFault& f = GetParam();
  auto rig = testing::NewRig(FaultRigOptions(f.num_devices));
  ASSERT_NE(rig, nullptr);
  rig->source_device(f.device).InjectArcFailure(f.from, f.to, EIO,
                                                f.enter_error);
  MemoryTransport out;
  auto engine = rig->NewEngine(rig->kernel(), out, FaultEngineOptions(), {});
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  FaultRun run = testing::MigrateThrough(*rig, **engine, out);
  if (f.completes) {
    ASSERT_TRUE(testing::Completed(run));
    std::printf("[ outcome  ] %s: completed and verified\n", f.name.c_str());
  } else {
    ASSERT_FALSE(run.source.ok()) << "the failed arc went unnoticed";
    const std::string why = run.source.ToString();
    std::printf("[ outcome  ] %s: %s\n", f.name.c_str(), why.c_str());
    EXPECT_NE(why.find("dev" + std::to_string(f.device)), std::string::npos)
        << "the error does not name the device: " << why;
    EXPECT_NE(why.find("Input/output error"), std::string::npos) << why;
  }
  testing::ExpectSourceRecovers(*rig, std::move(*engine));
}

INSTANTIATE_TEST_SUITE_P(
    Arcs, FaultFsmTest, ::testing::ValuesIn(ArcFaults()),
    [](const ::testing::TestParamInfo<ArcFault>& p) { return p.param.name; });

}  // namespace
}  // namespace converge
