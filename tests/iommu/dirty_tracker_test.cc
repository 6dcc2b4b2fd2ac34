#include "iommu/dirty_tracker.h"

#include <atomic>
#include <thread>

#include "gtest/gtest.h"
#include "iommu/dma_logging_source.h"
#include "iommu/iommufd_source.h"
#include "iommu/vfio_type1_source.h"
#include "sim/fault_kernel.h"
#include "tests/iommu/emulated_rig.h"

namespace converge {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kPage = 4096;

// Three sources over one 64 MiB region at gpa 0, on the given kernel.
struct Sources {
  Sources(testing::EmulatedRig& rig, Kernel& type1_kernel)
      : type1(type1_kernel, rig.container_fd,
              VfioType1Source::Options{{}, {{0, rig.bytes}}}),
        iommufd(rig.kernel, rig.iommufd, rig.hwpt_id, {}),
        dma_log(rig.kernel, rig.device_fd, {}) {}
  VfioType1Source type1;
  IommufdSource iommufd;
  DmaLoggingSource dma_log;
};

TEST(DirtyTrackerTest, UnionAndPerSourceAccounting) {
  testing::EmulatedRig rig(0, 64 * kMiB);
  Sources s(rig, rig.kernel);
  DirtyTracker tracker({RamRegion{0, 64 * kMiB, nullptr}},
                       DirtyTracker::Options{kPage, 4096});
  tracker.AddSource(&s.type1);
  tracker.AddSource(&s.iommufd);
  tracker.AddSource(&s.dma_log);
  ASSERT_TRUE(tracker.Start().ok());
  EXPECT_EQ(tracker.chunk_pages(), 4096u);
  rig.Dma(10 * kPage, 3 * kPage);          // all three: pages 10..12
  rig.kernel.NotifyDma(5000 * kPage, 1);   // both IOMMUs, not the device log
  rig.type1_container->Pin(9000 * kPage, 2 * kPage);  // type1 only
  ASSERT_TRUE(tracker.Sync().ok());
  const DirtyBitmap& bm = tracker.bitmap(0);
  EXPECT_EQ(bm.Runs(),
            (std::vector<PageRun>{{10, 3}, {5000, 1}, {9000, 2}}));
  EXPECT_EQ(tracker.last_sync(0).pages_reported, 6u);
  EXPECT_EQ(tracker.last_sync(0).pages_unique, 2u);
  EXPECT_EQ(tracker.last_sync(1).pages_reported, 4u);
  EXPECT_EQ(tracker.last_sync(1).pages_unique, 0u);
  EXPECT_EQ(tracker.last_sync(2).pages_reported, 3u);
  EXPECT_EQ(tracker.last_sync(2).pages_unique, 0u);
  // Pinned pages stay dirty: the next sync reports only them.
  ASSERT_TRUE(tracker.Sync().ok());
  EXPECT_EQ(tracker.last_sync(0).pages_reported, 2u);
  EXPECT_EQ(tracker.last_sync(1).pages_reported, 0u);
  EXPECT_EQ(tracker.cumulative(0).pages_reported, 8u);
  EXPECT_EQ(tracker.cumulative(0).pages_unique, 4u);
  EXPECT_TRUE(tracker.Rearm(0, 0, 64).ok());
  EXPECT_TRUE(tracker.Stop().ok());
}

TEST(DirtyTrackerTest, FailingSourceDoesNotStopSyncAndReturnsFirstError) {
  testing::EmulatedRig rig(0, 64 * kMiB, {}, 2);
  sim::FaultKernel fault(rig.kernel);
  Sources s(rig, fault);
  DirtyTracker tracker({RamRegion{0, 32 * kMiB, nullptr},
                        RamRegion{32 * kMiB, 32 * kMiB, nullptr}},
                       DirtyTracker::Options{kPage, 2048});
  tracker.AddSource(&s.type1);
  tracker.AddSource(&s.iommufd);
  tracker.AddSource(&s.dma_log);
  s.type1.SetMappings({{0, 32 * kMiB}, {32 * kMiB, 32 * kMiB}});
  ASSERT_TRUE(tracker.Start().ok());
  rig.Dma(40 * kMiB, 1);
  fault.AddRule(sim::FaultRule::FailNth(sim::KernelOp::kIoctl, 1, EIO)
                    .OnRequest(VFIO_IOMMU_DIRTY_PAGES));
  Status st = tracker.Sync();
  EXPECT_EQ(st.sys_errno(), EIO);
  EXPECT_NE(st.message().find("vfio-type1"), std::string::npos);
  EXPECT_EQ(tracker.bitmap(0).CountRange(0, 2048), 2048u)
      << "the failed window is dirty";
  EXPECT_TRUE(tracker.bitmap(1).Test(8 * kMiB / kPage))
      << "the other sources and windows were still harvested";
  EXPECT_EQ(tracker.last_sync(0).errors, 1u);
  EXPECT_EQ(tracker.last_sync(1).errors, 0u);
  EXPECT_EQ(tracker.last_sync(0).first_error.sys_errno(), EIO);
}

TEST(DirtyTrackerTest, TrackerSyncConcurrentWithDeviceDma) {
  testing::EmulatedRig rig(0, 64 * kMiB);
  Sources s(rig, rig.kernel);
  DirtyTracker tracker({RamRegion{0, 64 * kMiB, nullptr}});
  tracker.AddSource(&s.type1);
  tracker.AddSource(&s.iommufd);
  tracker.AddSource(&s.dma_log);
  ASSERT_TRUE(tracker.Start().ok());
  constexpr uint64_t kWrites = 2000;
  std::atomic<bool> done{false};
  std::thread device([&] {
    for (uint64_t i = 0; i < kWrites; ++i) {
      ASSERT_TRUE(rig.device->Dma((i * 7919 % 16384) * kPage, 8).ok());
    }
    done.store(true, std::memory_order_release);
  });
  DirtyBitmap seen(16384);
  while (!done.load(std::memory_order_acquire)) {
    ASSERT_TRUE(tracker.Sync().ok());
    seen.MergeFrom(tracker.bitmap(0));
    tracker.bitmap(0).ClearAll();
  }
  device.join();
  ASSERT_TRUE(tracker.Sync().ok());
  seen.MergeFrom(tracker.bitmap(0));
  for (uint64_t i = 0; i < kWrites; ++i) {
    ASSERT_TRUE(seen.Test(i * 7919 % 16384)) << "write " << i << " lost";
  }
}

}  // namespace
}  // namespace converge
