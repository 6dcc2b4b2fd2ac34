#include "engine/migration_device.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/engine/fake_migration_kernel.h"

namespace converge {
namespace {

using S = MigState;
using testing::FakeMigrationKernel;

constexpr uint64_t kAll = kMigrationStopCopy | kMigrationP2p | kMigrationPreCopy;
constexpr uint64_t kFlagSets[] = {
    kMigrationStopCopy, kMigrationStopCopy | kMigrationP2p,
    kMigrationStopCopy | kMigrationPreCopy, kAll};

std::string Arc(S from, S to, uint64_t flags) {
  return std::string(MigStateName(from)) + " -> " +
         std::string(MigStateName(to)) + " flags " + std::to_string(flags);
}

TEST(MigrationDeviceTest, GetReadsTheKernelState) {
  FakeMigrationKernel kernel(kAll, S::kPreCopy);
  MigrationDevice dev(kernel, FakeMigrationKernel::kDeviceFd, kAll, "dev0");
  EXPECT_FALSE(dev.state().has_value());
  Result<S> s = dev.GetState();
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, S::kPreCopy);
  EXPECT_EQ(dev.state(), S::kPreCopy);
}

TEST(MigrationDeviceTest, GetFailureNamesTheDevice) {
  FakeMigrationKernel kernel(kAll, S::kRunning);
  kernel.FailGets(true);
  MigrationDevice dev(kernel, FakeMigrationKernel::kDeviceFd, kAll, "nic7");
  Result<S> s = dev.GetState();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kIoError);
  EXPECT_NE(s.status().message().find("nic7"), std::string::npos);
  EXPECT_FALSE(dev.state().has_value());
}

TEST(MigrationDeviceTest, SetReturnsTheDataFdOnOpeningPaths) {
  FakeMigrationKernel kernel(kAll, S::kRunning);
  MigrationDevice dev(kernel, FakeMigrationKernel::kDeviceFd, kAll, "dev0");
  {
    Result<KernelFd> fd = dev.SetState(S::kPreCopy);
    ASSERT_TRUE(fd.ok()) << fd.status().ToString();
    EXPECT_TRUE(fd->valid());
    EXPECT_EQ(kernel.open_data_fds().size(), 1u);
    // The session continues into STOP_COPY on the same fd.
    Result<KernelFd> none = dev.SetState(S::kStopCopy);
    ASSERT_TRUE(none.ok()) << none.status().ToString();
    EXPECT_FALSE(none->valid());
    EXPECT_EQ(kernel.state(), S::kStopCopy);
  }
  EXPECT_TRUE(kernel.open_data_fds().empty());  // closed by KernelFd
  Result<KernelFd> back = dev.SetState(S::kRunning);
  ASSERT_TRUE(back.ok());
  EXPECT_FALSE(back->valid());
  EXPECT_EQ(dev.state(), S::kRunning);
}

TEST(MigrationDeviceTest, SameStateIssuesNoSet) {
  FakeMigrationKernel kernel(kAll, S::kRunning);
  MigrationDevice dev(kernel, FakeMigrationKernel::kDeviceFd, kAll, "dev0");
  ASSERT_TRUE(dev.GetState().ok());
  int before = kernel.ioctls();
  Result<KernelFd> fd = dev.SetState(S::kRunning);
  ASSERT_TRUE(fd.ok());
  EXPECT_EQ(kernel.ioctls(), before);
}

TEST(MigrationDeviceTest, RefusedArcsIssueNoIoctl) {
  for (S to : {S::kPreCopy, S::kPreCopyP2p}) {
    FakeMigrationKernel kernel(kAll, S::kStopCopy);
    MigrationDevice dev(kernel, FakeMigrationKernel::kDeviceFd, kAll, "dev0");
    ASSERT_TRUE(dev.GetState().ok());
    int before = kernel.ioctls();
    Result<KernelFd> fd = dev.SetState(to);
    ASSERT_FALSE(fd.ok());
    EXPECT_EQ(fd.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(fd.status().message().find("refused"), std::string::npos);
    EXPECT_NE(fd.status().message().find("dev0"), std::string::npos);
    EXPECT_EQ(kernel.ioctls(), before);
    EXPECT_EQ(kernel.state(), S::kStopCopy);
  }
}

TEST(MigrationDeviceTest, UnsupportedTargetIssuesNoIoctl) {
  const uint64_t flags = kMigrationStopCopy;
  FakeMigrationKernel kernel(flags, S::kRunning);
  MigrationDevice dev(kernel, FakeMigrationKernel::kDeviceFd, flags, "dev0");
  ASSERT_TRUE(dev.GetState().ok());
  int before = kernel.ioctls();
  EXPECT_FALSE(dev.SetState(S::kPreCopy).ok());
  EXPECT_FALSE(dev.SetState(S::kError).ok());
  EXPECT_EQ(kernel.ioctls(), before);
}

// For every flag set, every (from, to) pair with a non-empty path, and every
// arc of that path: the SET fails there, the state is read back and the
// device is returned to RUNNING.
TEST(MigrationDeviceTest, FailureOnEveryArcRecoversToRunning) {
  int cases = 0;
  for (uint64_t flags : kFlagSets) {
    for (uint32_t f = 1; f < kNumMigStates; ++f) {
      for (uint32_t t = 1; t < kNumMigStates; ++t) {
        S from = static_cast<S>(f), to = static_cast<S>(t);
        Result<std::vector<S>> path = PlanPath(from, to, flags);
        if (!path.ok() || path->empty()) continue;
        for (size_t arc = 0; arc < path->size(); ++arc) {
          SCOPED_TRACE(Arc(from, to, flags) + " arc " + std::to_string(arc));
          FakeMigrationKernel kernel(flags, from);
          MigrationDevice dev(kernel, FakeMigrationKernel::kDeviceFd, flags,
                              "dev0");
          kernel.FailArc(arc, EIO);
          Result<KernelFd> fd = dev.SetState(to);
          ASSERT_FALSE(fd.ok());
          EXPECT_EQ(fd.status().code(), StatusCode::kIoError);
          EXPECT_EQ(fd.status().sys_errno(), EIO);
          const SetFailure& failure = dev.last_failure();
          S left_in = arc == 0 ? from : (*path)[arc - 1];
          ASSERT_TRUE(failure.state_after.has_value());
          EXPECT_EQ(*failure.state_after, left_in);
          EXPECT_EQ(failure.recovery, left_in == S::kRunning
                                          ? RecoveryOutcome::kAlreadyRunning
                                          : RecoveryOutcome::kReturnedToRunning);
          EXPECT_EQ(failure.final_state, S::kRunning);
          EXPECT_EQ(kernel.state(), S::kRunning);
          EXPECT_EQ(dev.state(), S::kRunning);
          EXPECT_TRUE(kernel.open_data_fds().empty());
          EXPECT_NE(fd.status().message().find(
                        "left in " + std::string(MigStateName(left_in))),
                    std::string::npos)
              << fd.status().ToString();
          ++cases;
        }
      }
    }
  }
  EXPECT_GT(cases, 100);
}

TEST(MigrationDeviceTest, FailureIntoErrorResets) {
  FakeMigrationKernel kernel(kAll, S::kPreCopyP2p);
  MigrationDevice dev(kernel, FakeMigrationKernel::kDeviceFd, kAll, "dev0");
  kernel.FailArc(0, EIO, /*to_error_state=*/true);
  Result<KernelFd> fd = dev.SetState(S::kStopCopy);
  ASSERT_FALSE(fd.ok());
  const SetFailure& failure = dev.last_failure();
  EXPECT_EQ(failure.state_after, S::kError);
  EXPECT_EQ(failure.recovery, RecoveryOutcome::kReset);
  EXPECT_EQ(failure.final_state, S::kRunning);
  EXPECT_EQ(kernel.resets(), 1);
  EXPECT_NE(fd.status().message().find("reset to RUNNING"), std::string::npos)
      << fd.status().ToString();
}

TEST(MigrationDeviceTest, FailedResetIsReported) {
  FakeMigrationKernel kernel(kAll, S::kRunning);
  MigrationDevice dev(kernel, FakeMigrationKernel::kDeviceFd, kAll, "dev0");
  kernel.FailArc(0, EIO, /*to_error_state=*/true);
  kernel.FailResets(true);
  Result<KernelFd> fd = dev.SetState(S::kStopCopy);
  ASSERT_FALSE(fd.ok());
  EXPECT_EQ(dev.last_failure().recovery, RecoveryOutcome::kFailed);
  EXPECT_FALSE(dev.last_failure().recovery_error.ok());
  EXPECT_FALSE(dev.state().has_value());
  EXPECT_EQ(kernel.state(), S::kError);
}

TEST(MigrationDeviceTest, PolicyCanLeaveTheDeviceInPlace) {
  MigrationDevice::Options options;
  options.return_to_running = false;
  options.reset_on_error = false;
  {
    FakeMigrationKernel kernel(kAll, S::kRunning);
    MigrationDevice dev(kernel, FakeMigrationKernel::kDeviceFd, kAll, "dev0",
                        options);
    kernel.FailArc(2, EIO);  // RUNNING_P2P, STOP, [STOP_COPY fails]
    ASSERT_FALSE(dev.SetState(S::kStopCopy).ok());
    EXPECT_EQ(dev.last_failure().recovery, RecoveryOutcome::kLeftInPlace);
    EXPECT_EQ(kernel.state(), S::kStop);
    EXPECT_EQ(dev.state(), S::kStop);
  }
  {
    FakeMigrationKernel kernel(kAll, S::kRunning);
    MigrationDevice dev(kernel, FakeMigrationKernel::kDeviceFd, kAll, "dev0",
                        options);
    kernel.FailArc(0, EIO, /*to_error_state=*/true);
    ASSERT_FALSE(dev.SetState(S::kStopCopy).ok());
    EXPECT_EQ(dev.last_failure().recovery, RecoveryOutcome::kLeftInPlace);
    EXPECT_EQ(kernel.resets(), 0);
    EXPECT_EQ(dev.state(), S::kError);
  }
}

TEST(MigrationDeviceTest, UnreadableStateAfterFailure) {
  FakeMigrationKernel kernel(kAll, S::kRunning);
  MigrationDevice dev(kernel, FakeMigrationKernel::kDeviceFd, kAll, "dev0");
  ASSERT_TRUE(dev.GetState().ok());
  kernel.FailArc(1, EINVAL);
  kernel.FailGets(true);
  Result<KernelFd> fd = dev.SetState(S::kStop);
  ASSERT_FALSE(fd.ok());
  EXPECT_EQ(fd.status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(dev.last_failure().state_after.has_value());
  EXPECT_EQ(dev.last_failure().recovery, RecoveryOutcome::kFailed);
  EXPECT_NE(fd.status().message().find("left in unknown"), std::string::npos);
}

TEST(MigrationDeviceTest, ErrorStateRequiresReset) {
  FakeMigrationKernel kernel(kAll, S::kError);
  MigrationDevice dev(kernel, FakeMigrationKernel::kDeviceFd, kAll, "dev0");
  Result<KernelFd> fd = dev.SetState(S::kRunning);
  ASSERT_FALSE(fd.ok());
  EXPECT_EQ(fd.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(kernel.set_targets().empty());
  Result<S> after = dev.Reset();
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(*after, S::kRunning);
}

}  // namespace
}  // namespace converge
