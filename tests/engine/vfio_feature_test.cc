#include "engine/vfio_feature.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <memory>
#include <string>

#include "engine/device_session.h"
#include "engine/migration_device.h"
#include "iommu/uapi_compat.h"
#include "sim/emulated_kernel.h"
#include "sim/fault_kernel.h"
#include "sim/vfio_device.h"

namespace converge {
namespace {

using S = MigState;

class VfioFeatureTest : public ::testing::Test {
 protected:
  int AddDevice(sim::VfioDeviceOptions options = {}) {
    options.precopy_initial_bytes = 64 << 10;
    options.stop_copy_bytes = 16 << 10;
    auto dev = sim::EmulatedVfioDevice::Create(emulated_, options);
    device_ = dev;
    return emulated_.Install(dev);
  }

  sim::EmulatedKernel emulated_;
  sim::FaultKernel kernel_{emulated_};
  std::shared_ptr<sim::EmulatedVfioDevice> device_;
};

TEST_F(VfioFeatureTest, GetCopiesThePayloadBack) {
  int fd = AddDevice();
  vfio_device_feature_migration mig{};
  ASSERT_TRUE(DeviceFeature(kernel_, fd, FeatureOp::kGet,
                            VFIO_DEVICE_FEATURE_MIGRATION, &mig, sizeof mig,
                            "get flags")
                  .ok());
  EXPECT_EQ(mig.flags, static_cast<uint64_t>(VFIO_MIGRATION_STOP_COPY |
                                             VFIO_MIGRATION_P2P |
                                             VFIO_MIGRATION_PRE_COPY));
}

TEST_F(VfioFeatureTest, ErrorsCarryTheCallName) {
  int fd = AddDevice();
  kernel_.AddRule(sim::FaultRule::FailNth(sim::KernelOp::kIoctl, 1, EIO)
                      .OnRequest(VFIO_DEVICE_FEATURE));
  vfio_device_feature_migration mig{};
  Status s = DeviceFeature(kernel_, fd, FeatureOp::kGet,
                           VFIO_DEVICE_FEATURE_MIGRATION, &mig, sizeof mig,
                           "get flags of nic0");
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_EQ(s.sys_errno(), EIO);
  EXPECT_NE(s.message().find("get flags of nic0"), std::string::npos);
}

TEST_F(VfioFeatureTest, ProbeSaysWhetherAFeatureExists) {
  sim::VfioDeviceOptions o;
  o.dma_logging = false;
  int fd = AddDevice(o);
  Result<bool> mig = ProbeDeviceFeature(
      kernel_, fd, VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
      static_cast<uint32_t>(FeatureOp::kGet) |
          static_cast<uint32_t>(FeatureOp::kSet));
  ASSERT_TRUE(mig.ok());
  EXPECT_TRUE(*mig);
  Result<bool> log = ProbeDeviceFeature(
      kernel_, fd, VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
      static_cast<uint32_t>(FeatureOp::kSet));
  ASSERT_TRUE(log.ok());
  EXPECT_FALSE(*log);  // ENOTTY
  // Older kernels say EINVAL for a missing feature: also "no".
  kernel_.AddRule(sim::FaultRule::FailNth(sim::KernelOp::kIoctl, 1, EINVAL));
  Result<bool> old = ProbeDeviceFeature(kernel_, fd,
                                        VFIO_DEVICE_FEATURE_MIG_DATA_SIZE,
                                        static_cast<uint32_t>(FeatureOp::kGet));
  ASSERT_TRUE(old.ok());
  EXPECT_FALSE(*old);
  // Any other error is an error.
  kernel_.ClearRules();
  kernel_.AddRule(sim::FaultRule::FailNth(sim::KernelOp::kIoctl, 1, EIO));
  Result<bool> broken = ProbeDeviceFeature(
      kernel_, fd, VFIO_DEVICE_FEATURE_MIG_DATA_SIZE,
      static_cast<uint32_t>(FeatureOp::kGet));
  EXPECT_EQ(broken.status().code(), StatusCode::kIoError);
}

TEST_F(VfioFeatureTest, SessionErrorPaths) {
  int fd = AddDevice();
  // Discovery fails on a broken device (not "unsupported").
  kernel_.AddRule(sim::FaultRule::FailNth(sim::KernelOp::kIoctl, 1, EIO));
  Result<std::unique_ptr<DeviceSession>> broken =
      DeviceSession::Open(kernel_, fd, "nic0");
  EXPECT_EQ(broken.status().code(), StatusCode::kIoError);
  kernel_.ClearRules();

  Result<std::unique_ptr<DeviceSession>> opened =
      DeviceSession::Open(kernel_, fd, "nic0");
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  DeviceSession& session = **opened;
  ASSERT_TRUE(session.Transition(S::kPreCopy).ok());
  kernel_.AddRule(sim::FaultRule::FailNth(sim::KernelOp::kIoctl, 1, ENODEV)
                      .OnRequest(VFIO_MIG_GET_PRECOPY_INFO));
  Result<DevicePrecopyInfo> info = session.QueryPrecopyInfo();
  EXPECT_EQ(info.status().sys_errno(), ENODEV);
  EXPECT_NE(info.status().message().find("nic0"), std::string::npos);
  kernel_.AddRule(sim::FaultRule::FailNth(sim::KernelOp::kIoctl, 1, EIO)
                      .OnRequest(VFIO_DEVICE_FEATURE));
  EXPECT_EQ(session.QueryStopCopyBytes().status().code(),
            StatusCode::kIoError);
}

// MigrationDevice against the emulated device: a failure injected on every
// arc of every path from every state ends with the device in RUNNING.
TEST_F(VfioFeatureTest, MigrationDeviceRecoversOnEveryEmulatedArc) {
  const uint64_t flags = kMigrationStopCopy | kMigrationP2p |
                         kMigrationPreCopy;
  int cases = 0;
  for (uint32_t f = 1; f < kNumMigStates; ++f) {
    for (uint32_t t = 1; t < kNumMigStates; ++t) {
      S from = static_cast<S>(f), to = static_cast<S>(t);
      Result<std::vector<S>> path = PlanPath(from, to, flags);
      if (!path.ok() || path->empty()) continue;
      for (size_t arc = 0; arc < path->size(); ++arc) {
        SCOPED_TRACE(std::string(MigStateName(from)) + " -> " +
                     std::string(MigStateName(to)) + " arc " +
                     std::to_string(arc));
        int fd = AddDevice();
        MigrationDevice dev(kernel_, fd, flags, "dev");
        Result<KernelFd> setup = dev.SetState(from);
        ASSERT_TRUE(setup.ok()) << setup.status().ToString();
        S arc_from = arc == 0 ? from : (*path)[arc - 1];
        device_->InjectArcFailure(static_cast<sim::MigState>(arc_from),
                                  static_cast<sim::MigState>((*path)[arc]),
                                  EIO, /*enter_error=*/arc % 2 == 1);
        Result<KernelFd> r = dev.SetState(to);
        ASSERT_FALSE(r.ok());
        // Leaving RESUMING validates the (here empty) stream first, so the
        // injected failure may not be reached: EINVAL instead.
        if (from != S::kResuming) {
          EXPECT_EQ(r.status().sys_errno(), EIO);
        }
        EXPECT_EQ(device_->state(), sim::MigState::kRunning)
            << r.status().ToString();
        EXPECT_EQ(dev.state(), S::kRunning);
        EXPECT_EQ(device_->hang_attempts(), 0u);
        ++cases;
      }
    }
  }
  EXPECT_GT(cases, 40);
}

}  // namespace
}  // namespace converge
