#include "iommu/dma_logging_source.h"

#include <set>

#include "gtest/gtest.h"
#include "sim/fault_kernel.h"
#include "tests/iommu/emulated_rig.h"

namespace converge {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kPage = 4096;

TEST(DmaLoggingSourceTest, DmaShowsUpExactlyAndReadClears) {
  testing::EmulatedRig rig(0, 64 * kMiB);
  DmaLoggingSource::Options o;
  o.max_bytes_per_report = 16 * kMiB;
  DmaLoggingSource src(rig.kernel, rig.device_fd, o);
  const GpaRange range{0, 64 * kMiB};
  ASSERT_TRUE(src.Start({&range, 1}, kPage).ok());
  EXPECT_TRUE(rig.device->dma_logging_active());
  std::set<uint64_t> want = {0, 4095, 4096, 12345};
  for (uint64_t p : want) rig.Dma(p * kPage + 1, 2);
  DirtyBitmap out(16384);
  ASSERT_TRUE(src.Harvest(0, 16384, out, 0).ok());
  EXPECT_EQ(out.Count(), want.size());
  for (uint64_t p : want) EXPECT_TRUE(out.Test(p));
  EXPECT_EQ(src.stats().kernel_calls, 4u);
  DirtyBitmap again(16384);
  ASSERT_TRUE(src.Harvest(0, 16384, again, 0).ok());
  EXPECT_EQ(again.Count(), 0u);
  ASSERT_TRUE(src.Stop().ok());
  EXPECT_FALSE(rig.device->dma_logging_active());
}

TEST(DmaLoggingSourceTest, MoreThan256RangesAreCollapsed) {
  testing::EmulatedRig rig(0, 64 * kMiB);
  DmaLoggingSource src(rig.kernel, rig.device_fd, {});
  std::vector<GpaRange> ranges;
  for (uint64_t i = 0; i < 300; ++i) ranges.push_back({i * 2 * 65536, 65536});
  ASSERT_TRUE(src.Start(ranges, kPage).ok());
  EXPECT_LE(src.started_ranges().size(), 256u);
  rig.Dma(299 * 2 * 65536, 1);
  DirtyBitmap out(16);
  ASSERT_TRUE(src.Harvest(299 * 2 * 65536, 16, out, 0).ok());
  EXPECT_EQ(out.Runs(), (std::vector<PageRun>{{0, 1}}));
}

TEST(DmaLoggingSourceTest, ReportErrorMarksEverythingAndRestarts) {
  testing::EmulatedRig rig(0, 16 * kMiB);
  DmaLoggingSource src(rig.kernel, rig.device_fd, {});
  const GpaRange range{0, 16 * kMiB};
  ASSERT_TRUE(src.Start({&range, 1}, kPage).ok());
  rig.Dma(5 * kPage, 1);
  rig.Dma(3000 * kPage, 1);
  rig.device->InjectDmaLogReportError(EIO);
  DirtyBitmap out(4096);
  Status s = src.Harvest(0, 1024, out, 0);
  EXPECT_EQ(s.sys_errno(), EIO);
  EXPECT_NE(s.message().find("dma-logging"), std::string::npos);
  EXPECT_EQ(out.CountRange(0, 1024), 1024u);
  EXPECT_EQ(src.stats().restarts, 1u);
  EXPECT_TRUE(rig.device->dma_logging_active());
  // The lost log covered page 3000 too: it is reported (as pending).
  ASSERT_TRUE(src.Harvest(1024 * kPage, 3072, out, 1024).ok());
  EXPECT_TRUE(out.Test(3000));
  // Tracking works again after the restart.
  rig.Dma(7 * kPage, 1);
  DirtyBitmap fresh(4096);
  ASSERT_TRUE(src.Harvest(0, 4096, fresh, 0).ok());
  ASSERT_TRUE(src.Harvest(0, 4096, fresh, 0).ok());
  DirtyBitmap last(4096);
  rig.Dma(9 * kPage, 1);
  ASSERT_TRUE(src.Harvest(0, 4096, last, 0).ok());
  EXPECT_EQ(last.Runs(), (std::vector<PageRun>{{9, 1}}));
}

TEST(DmaLoggingSourceTest, FailedRestartIsReported) {
  testing::EmulatedRig rig(0, 16 * kMiB);
  sim::FaultKernel fault(rig.kernel);
  DmaLoggingSource src(fault, rig.device_fd, {});
  const GpaRange range{0, 16 * kMiB};
  ASSERT_TRUE(src.Start({&range, 1}, kPage).ok());
  fault.AddRule(sim::FaultRule::FailFrom(sim::KernelOp::kIoctl, 1, EIO)
                    .OnRequest(VFIO_DEVICE_FEATURE));
  DirtyBitmap out(4096);
  Status s = src.Harvest(0, 4096, out, 0);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("restarting tracking failed"), std::string::npos)
      << s.ToString();
  EXPECT_EQ(out.Count(), 4096u);
  fault.ClearRules();
  rig.Dma(1, 1);
  DirtyBitmap next(4096);
  // The injected faults never reached the device, so its log still runs:
  // the next harvest works and delivers everything the lost read covered.
  ASSERT_TRUE(src.Harvest(0, 4096, next, 0).ok());
  EXPECT_EQ(next.Count(), 4096u);
  EXPECT_EQ(src.stats().restarts, 1u);
  EXPECT_EQ(src.stats().errors, 1u);
}

}  // namespace
}  // namespace converge
