// Faults on the devices' data side: PRECOPY_INFO on a data_fd failing with
// EIO or ENODEV mid-stream, short reads, EINTR storms on every ioctl, a
// device that never drains in PRE_COPY, and a device whose stop-copy state
// grows after the switchover began.

#include <gtest/gtest.h>
#include <linux/vfio.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>

#include "sim/fault_kernel.h"
#include "tests/fault/fault_rig.h"
#include "tests/vm/kvm_test_support.h"

namespace converge {
namespace {

using sim::FaultKernel;
using sim::FaultRule;
using sim::KernelOp;
using testing::FaultEngineOptions;
using testing::FaultRigOptions;
using testing::FaultRun;
using testing::MigrationRig;

class FaultDataFdTest : public ::testing::Test {
 protected:
  void SetUp() override { std::signal(SIGPIPE, SIG_IGN); }
};

struct PrecopyInfoFault {
  const char* name;
  int error;
  const char* message;  // what the abort names
};

class FaultDataFdErrnoTest
    : public FaultDataFdTest,
      public ::testing::WithParamInterface<PrecopyInfoFault> {};

TEST_P(FaultDataFdErrnoTest, PrecopyInfoFailsMidStream) {
  CONVERGE_SKIP_WITHOUT_KVM();
  const PrecopyInfoFault& f = GetParam();
  auto rig = testing::NewRig(FaultRigOptions());
  ASSERT_NE(rig, nullptr);
  FaultKernel faults(rig->kernel());
  // The third query: after Start's and the first Sync's, mid pre-copy.
  faults.AddRule(FaultRule::FailNth(KernelOp::kIoctl, 3, f.error)
                     .OnRequest(VFIO_MIG_GET_PRECOPY_INFO));
  MemoryTransport out;
  auto engine = rig->NewEngine(faults, out, FaultEngineOptions(), {});
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  FaultRun run = testing::MigrateThrough(*rig, **engine, out);
  EXPECT_EQ(faults.injected(), 1u);
  ASSERT_FALSE(run.source.ok()) << "the migration ignored a failed device";
  std::printf("[ outcome  ] %s: %s\n", f.name, run.source.ToString().c_str());
  EXPECT_NE(run.source.ToString().find(f.message), std::string::npos)
      << run.source.ToString();
  EXPECT_NE(run.source.ToString().find("dev"), std::string::npos)
      << "the error does not name the device: " << run.source.ToString();
  testing::ExpectSourceRecovers(*rig, std::move(*engine));
}

INSTANTIATE_TEST_SUITE_P(
    Errnos, FaultDataFdErrnoTest,
    ::testing::Values(PrecopyInfoFault{"Eio", EIO, "Input/output error"},
                      PrecopyInfoFault{"Enodev", ENODEV, "No such device"}),
    [](const ::testing::TestParamInfo<PrecopyInfoFault>& p) {
      return std::string(p.param.name);
    });

TEST_F(FaultDataFdTest, ShortReadsStillVerify) {
  CONVERGE_SKIP_WITHOUT_KVM();
  testing::RigOptions r = FaultRigOptions();
  r.device.pipe_bytes = 4096;  // the device hands out at most a page a read
  auto rig = testing::NewRig(r);
  ASSERT_NE(rig, nullptr);
  FaultKernel faults(rig->kernel());
  faults.AddRule(FaultRule::ShortIo(KernelOp::kRead, 512));
  faults.AddRule(FaultRule::ShortIo(KernelOp::kWrite, 512));
  EngineOptions o = FaultEngineOptions();
  o.drain.chunk_bytes = 64 << 10;
  MemoryTransport out;
  auto engine = rig->NewEngine(faults, out, o, {});
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  FaultRun run = testing::MigrateThrough(*rig, **engine, out);
  ASSERT_TRUE(testing::Completed(run));
  testing::ExpectSourceRecovers(*rig, std::move(*engine));
}

TEST_F(FaultDataFdTest, EintrStormOnEveryIoctlIsRetried) {
  CONVERGE_SKIP_WITHOUT_KVM();
  auto rig = testing::NewRig(FaultRigOptions());
  ASSERT_NE(rig, nullptr);
  FaultKernel faults(rig->kernel());
  // Every other ioctl of the first thousand is interrupted.
  for (uint64_t n = 1; n < 1000; n += 2) {
    faults.AddRule(FaultRule::FailNth(KernelOp::kIoctl, n, EINTR));
  }
  MemoryTransport out;
  auto engine = rig->NewEngine(faults, out, FaultEngineOptions(), {});
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  FaultRun run = testing::MigrateThrough(*rig, **engine, out);
  ASSERT_TRUE(testing::Completed(run));
  EXPECT_GT(faults.injected(), 10u);
  testing::ExpectSourceRecovers(*rig, std::move(*engine));
}

testing::RigOptions NeverDrainingDevice() {
  testing::RigOptions r = FaultRigOptions();
  r.device.dirty_bytes_per_sec = uint64_t{256} << 20;
  r.device.max_dirty_bytes = 16 << 20;
  return r;
}

TEST_F(FaultDataFdTest, DeviceThatNeverDrainsAbortsAtTheIterationLimit) {
  CONVERGE_SKIP_WITHOUT_KVM();
  auto rig = testing::NewRig(NeverDrainingDevice());
  ASSERT_NE(rig, nullptr);
  EngineOptions o = FaultEngineOptions();
  o.policy.downtime_limit_ms = 1;
  o.policy.max_iterations = 4;
  o.policy.on_limit = OnLimit::kAbort;
  MemoryTransport out;
  auto engine = rig->NewEngine(rig->kernel(), out, o, {});
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  FaultRun run = testing::MigrateThrough(*rig, **engine, out);
  ASSERT_FALSE(run.source.ok());
  EXPECT_EQ(run.source.code(), StatusCode::kCancelled)
      << run.source.ToString();
  EXPECT_NE(run.source.message().find("policy aborted"), std::string::npos)
      << run.source.ToString();
  testing::ExpectSourceRecovers(*rig, std::move(*engine));
}

TEST_F(FaultDataFdTest, DeviceThatNeverDrainsForcedSwitchoverVerifies) {
  CONVERGE_SKIP_WITHOUT_KVM();
  auto rig = testing::NewRig(NeverDrainingDevice());
  ASSERT_NE(rig, nullptr);
  EngineOptions o = FaultEngineOptions();
  o.policy.downtime_limit_ms = 1;
  o.policy.max_iterations = 4;
  MemoryTransport out;
  auto engine = rig->NewEngine(rig->kernel(), out, o, {});
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  FaultRun run = testing::MigrateThrough(*rig, **engine, out);
  ASSERT_TRUE(testing::Completed(run));
  testing::ExpectSourceRecovers(*rig, std::move(*engine));
}

TEST_F(FaultDataFdTest, StopCopyStateGrowingAfterSwitchoverVerifies) {
  CONVERGE_SKIP_WITHOUT_KVM();
  testing::RigOptions r = FaultRigOptions();
  r.device.max_dirty_bytes = 16 << 20;  // room for the growth
  auto rig = testing::NewRig(r);
  ASSERT_NE(rig, nullptr);
  MemoryTransport out;
  auto engine = rig->NewEngine(rig->kernel(), out, FaultEngineOptions(), {});
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  PrecopyEngine& e = **engine;
  ASSERT_TRUE(e.Start().ok());
  ASSERT_TRUE(e.Sync().ok());
  ASSERT_TRUE(e.Iterate().ok());
  ASSERT_TRUE(e.Sync().ok());
  MicroVm* vm = &rig->vm();
  sim::EmulatedVfioDevice* dev = &rig->source_device(0);
  SwitchoverHooks hooks;
  // Devices are in PRE_COPY_P2P here: 8 MiB more state than any estimate.
  hooks.pause_vcpus = [vm, dev] {
    dev->DirtyState(8 << 20);
    return vm->Pause();
  };
  hooks.resume_vcpus = [vm] { (void)vm->Resume(); };
  Result<SwitchoverStats> s = e.Switchover(hooks);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_GE(s->device_bytes, uint64_t{8} << 20);
  MemoryTransport in(out.data());
  auto dest = rig->NewDestination(in);
  ASSERT_TRUE(dest.ok()) << dest.status().ToString();
  Result<DestinationResult> d = (*dest)->Run();
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  std::string mismatch;
  EXPECT_TRUE(rig->Verify(&mismatch)) << mismatch;
  ASSERT_TRUE(rig->vm().Resume().ok());
  testing::ExpectSourceRecovers(*rig, std::move(*engine));
}

}  // namespace
}  // namespace converge
