// Dirty-source faults: a KVM dirty-log harvest failing, a device DMA-log
// harvest failing and a DMA-logging REPORT error (the log is lost and
// tracking restarts), and a small KVM dirty ring filling. A failing source
// must not lose a bit: its windows are resent and the migration verifies.

#include <gtest/gtest.h>
#include <linux/kvm.h>
#include <linux/vfio.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <memory>

#include "iommu/dma_logging_source.h"
#include "sim/fault_kernel.h"
#include "tests/fault/fault_rig.h"
#include "tests/vm/kvm_test_support.h"
#include "vm/kvm_dirty_log_source.h"

namespace converge {
namespace {

using sim::FaultKernel;
using sim::FaultRule;
using sim::KernelOp;
using testing::FaultEngineOptions;
using testing::FaultRigOptions;
using testing::FaultRun;
using testing::WatchedSource;

class FaultDirtySourceTest : public ::testing::Test {
 protected:
  void SetUp() override { std::signal(SIGPIPE, SIG_IGN); }
};

TEST_F(FaultDirtySourceTest, KvmDirtyLogHarvestFailureResendsItsWindow) {
  CONVERGE_SKIP_WITHOUT_KVM();
  auto rig = testing::NewRig(FaultRigOptions());
  ASSERT_NE(rig, nullptr);
  FaultKernel faults(Kernel::Default());
  faults.AddRule(FaultRule::FailNth(KernelOp::kIoctl, 2, EIO)
                     .OnRequest(KVM_GET_DIRTY_LOG));
  KvmDirtyLogSource kvm(faults, rig->vm().vm_fd(), rig->vm().memslots());
  WatchedSource watched(kvm);
  MemoryTransport out;
  auto engine = rig->NewEngine(rig->kernel(), out, FaultEngineOptions(),
                               {{&watched, SourceKind::kVcpu}});
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  FaultRun run = testing::MigrateThrough(*rig, **engine, out);
  EXPECT_EQ(faults.injected(), 1u);
  ASSERT_TRUE(testing::Completed(run));
  testing::ExpectSourceRecovers(*rig, std::move(*engine), {&watched});
}

// A device outside the migration that DMAs into guest RAM between
// iterations: its writes are invisible to KVM, so only its DMA log can
// carry them to the destination.
struct DmaFault {
  const char* name;
  bool report_error;  // InjectDmaLogReportError, else a failed ioctl
};

class FaultDmaLogTest : public FaultDirtySourceTest,
                        public ::testing::WithParamInterface<DmaFault> {};

TEST_P(FaultDmaLogTest, DeviceDmaIsNotLost) {
  CONVERGE_SKIP_WITHOUT_KVM();
  auto rig = testing::NewRig(FaultRigOptions());
  ASSERT_NE(rig, nullptr);
  auto dma_dev = sim::EmulatedVfioDevice::Create(rig->kernel(), {});
  const int dma_fd = rig->kernel().Install(dma_dev);
  FaultKernel faults(rig->kernel());
  DmaLoggingSource dma(faults, dma_fd, {});
  WatchedSource watched(dma);
  MicroVm& vm = rig->vm();
  uint64_t writes = 0;
  EngineOptions o = FaultEngineOptions();
  // The fault lands in iteration 2: a limit no run can meet and a forced
  // switchover after six iterations make sure there is one, however fast
  // pre-copy drains.
  o.policy.downtime_limit_ms = 0.01;
  o.policy.max_iterations = 6;
  o.progress = [&](const IterationStats& s) {
    // Four pages per iteration, each a new value.
    for (uint64_t p = 0; p < 4; ++p) {
      const uint64_t gpa = ((s.iteration * 97 + p * 4099) % vm.num_pages()) *
                           4096;
      ++writes;
      std::memcpy(vm.ram() + gpa + 64, &writes, sizeof(writes));
      ASSERT_TRUE(dma_dev->Dma(gpa, 4096).ok());
    }
    if (s.iteration == 2) {
      if (GetParam().report_error) {
        dma_dev->InjectDmaLogReportError(EIO);
      } else {
        faults.AddRule(FaultRule::FailNth(KernelOp::kIoctl, 1, EIO)
                           .OnFd(dma_fd)
                           .OnRequest(VFIO_DEVICE_FEATURE));
      }
    }
  };
  MemoryTransport out;
  auto engine = rig->NewEngine(
      rig->kernel(), out, o,
      {{&rig->source(), SourceKind::kVcpu}, {&watched, SourceKind::kDma}});
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  FaultRun run = testing::MigrateThrough(*rig, **engine, out);
  ASSERT_TRUE(testing::Completed(run));
  EXPECT_GT(writes, 8u);
  if (GetParam().report_error) {
    EXPECT_GE(dma.stats().restarts, 1u) << "tracking was not restarted";
  } else {
    EXPECT_EQ(faults.injected(), 1u);
  }
  testing::ExpectSourceRecovers(*rig, std::move(*engine), {&watched});
  EXPECT_FALSE(dma_dev->dma_logging_active()) << "DMA logging left on";
}

INSTANTIATE_TEST_SUITE_P(
    Faults, FaultDmaLogTest,
    ::testing::Values(DmaFault{"ReportError", true},
                      DmaFault{"HarvestIoctlFails", false}),
    [](const ::testing::TestParamInfo<DmaFault>& p) {
      return std::string(p.param.name);
    });

TEST_F(FaultDirtySourceTest, FullKvmDirtyRingLosesNothing) {
  CONVERGE_SKIP_WITHOUT_KVM();
  testing::RigOptions r = FaultRigOptions();
  r.dirty_ring = true;  // 64 KiB: 4096 entries
  r.workload.rate_pages_per_s = 50000;
  auto rig = testing::NewRig(r);
  ASSERT_NE(rig, nullptr);
  Result<testing::MigrationOutcome> o =
      rig->MigrateInMemory(FaultEngineOptions());
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_TRUE(o->verified) << o->mismatch;
  EXPECT_GT(rig->vm().stats().ring_full_exits, 0u) << "the ring never filled";
  EXPECT_TRUE(rig->vm().vcpu_status().ok())
      << rig->vm().vcpu_status().ToString();
  EXPECT_TRUE(testing::VcpuMakesProgress(*rig));
}

// Writes faster than a 64 KiB ring can hold between full exits: where KVM
// overruns the ring (it does under PVM, whose emulated writes skip the
// soft-full check), the source detects it, reports every page dirty and
// resyncs; the migration still verifies and the vCPU keeps running.
TEST_F(FaultDirtySourceTest, OverflowingKvmDirtyRingLeavesTheVcpuRunning) {
  CONVERGE_SKIP_WITHOUT_KVM();
  testing::RigOptions r = FaultRigOptions();
  r.dirty_ring = true;
  r.workload.rate_pages_per_s = 200000;
  auto rig = testing::NewRig(r);
  ASSERT_NE(rig, nullptr);
  Result<testing::MigrationOutcome> o =
      rig->MigrateInMemory(FaultEngineOptions());
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_TRUE(o->verified) << o->mismatch;
  EXPECT_TRUE(rig->vm().vcpu_status().ok())
      << rig->vm().vcpu_status().ToString();
  EXPECT_TRUE(testing::VcpuMakesProgress(*rig));
}

}  // namespace
}  // namespace converge
