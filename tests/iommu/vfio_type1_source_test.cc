#include "iommu/vfio_type1_source.h"

#include <random>
#include <set>

#include "gtest/gtest.h"
#include "sim/fault_kernel.h"
#include "tests/iommu/emulated_rig.h"

namespace converge {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kPage = 4096;

VfioType1Source::Options OneMapping(uint64_t gpa, uint64_t bytes,
                                    uint32_t mappings = 1) {
  VfioType1Source::Options o;
  for (uint32_t i = 0; i < mappings; ++i) {
    o.mappings.push_back({gpa + i * (bytes / mappings), bytes / mappings});
  }
  return o;
}

TEST(VfioType1SourceTest, ReadsMigrationCapability) {
  testing::EmulatedRig rig(0, 16 * kMiB, {2 * kMiB, 4096, true});
  auto info = VfioType1Source::ReadMigrationInfo(rig.kernel, rig.container_fd);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->page_bytes(), 2 * kMiB);
  EXPECT_EQ(info->max_dirty_bitmap_bytes, 4096u);
  auto bad = VfioType1Source::ReadMigrationInfo(rig.kernel, rig.iommufd);
  EXPECT_FALSE(bad.ok());
}

TEST(VfioType1SourceTest, DmaShowsUpExactlyAndReadClears) {
  testing::EmulatedRig rig(1 << 30, 64 * kMiB);
  VfioType1Source src(rig.kernel, rig.container_fd, OneMapping(1 << 30, 64 * kMiB));
  const GpaRange range{1 << 30, 64 * kMiB};
  ASSERT_TRUE(src.Start({&range, 1}, kPage).ok());
  std::set<uint64_t> want = {0, 1, 77, 4095, 16383};
  for (uint64_t p : want) rig.Dma((1 << 30) + p * kPage + 5, 1);
  DirtyBitmap out(16384 + 10);
  ASSERT_TRUE(src.Harvest(1 << 30, 16384, out, 10).ok());
  std::set<uint64_t> got;
  for (uint64_t p = 0; p < out.num_pages(); ++p) {
    if (out.Test(p)) got.insert(p - 10);
  }
  EXPECT_EQ(got, want);
  EXPECT_EQ(src.stats().pages_reported, want.size());
  DirtyBitmap again(16384);
  ASSERT_TRUE(src.Harvest(1 << 30, 16384, again, 0).ok());
  EXPECT_EQ(again.Count(), 0u);
  EXPECT_TRUE(src.Stop().ok());
  EXPECT_FALSE(rig.type1_container->tracking());
}

TEST(VfioType1SourceTest, RescalesHugeIommuPagesWithoutLosingEdges) {
  testing::EmulatedRig rig(0, 16 * kMiB, {2 * kMiB, 1 << 20, true});
  VfioType1Source src(rig.kernel, rig.container_fd, OneMapping(0, 16 * kMiB));
  const GpaRange range{0, 16 * kMiB};
  ASSERT_TRUE(src.Start({&range, 1}, kPage).ok());
  EXPECT_EQ(src.limits().page_size_bytes, 2 * kMiB);
  EXPECT_EQ(src.limits().align_pages, 512u);
  rig.Dma(2 * kMiB + 7 * kPage, 1);  // 2 MiB page 1 = RAM pages 512..1023
  DirtyBitmap out(4096);
  ASSERT_TRUE(src.Harvest(0, 4096, out, 0).ok());
  EXPECT_EQ(out.Runs(), (std::vector<PageRun>{{512, 512}}));

  // A window that cuts a 2 MiB page: the rest of it stays pending.
  rig.Dma(4 * kMiB, 1);  // RAM pages 1024..1535
  DirtyBitmap part(4096);
  ASSERT_TRUE(src.Harvest(0, 1100, part, 0).ok());
  EXPECT_EQ(part.Runs(), (std::vector<PageRun>{{1024, 76}}));
  EXPECT_EQ(src.pending_pages(), 512u - 76u);
  ASSERT_TRUE(src.Harvest(1100 * kPage, 4096 - 1100, part, 1100).ok());
  EXPECT_EQ(part.Runs(), (std::vector<PageRun>{{1024, 512}}));
  EXPECT_EQ(src.pending_pages(), 0u);
}

TEST(VfioType1SourceTest, ChunksToBitmapLimitAndNeverCutsMappings) {
  // 8 mappings of 1 MiB (32 bitmap bytes each); 64 bytes per call.
  testing::EmulatedRig rig(0, 8 * kMiB, {4096, 64, true}, 8);
  VfioType1Source src(rig.kernel, rig.container_fd, OneMapping(0, 8 * kMiB, 8));
  const GpaRange range{0, 8 * kMiB};
  ASSERT_TRUE(src.Start({&range, 1}, kPage).ok());
  for (uint64_t p : {3, 300, 700, 2047}) rig.Dma(p * kPage, 1);
  DirtyBitmap out(2048);
  ASSERT_TRUE(src.Harvest(0, 2048, out, 0).ok());
  EXPECT_EQ(src.stats().kernel_calls, 4u);
  EXPECT_EQ(out.Count(), 4u);
  // A window inside mapping 0 reads all of mapping 0; page 10 waits.
  rig.Dma(10 * kPage, 1);
  rig.Dma(150 * kPage, 1);
  DirtyBitmap w(2048);
  ASSERT_TRUE(src.Harvest(100 * kPage, 100, w, 100).ok());
  EXPECT_EQ(w.Runs(), (std::vector<PageRun>{{150, 1}}));
  ASSERT_TRUE(src.Harvest(0, 100, w, 0).ok());
  EXPECT_TRUE(w.Test(10));
}

TEST(VfioType1SourceTest, InjectedFailureAtEveryCallLosesNoBit) {
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  testing::EmulatedRig rig(0, 8 * kMiB, {4096, 64, true}, 8);
  sim::FaultKernel fault(rig.kernel);
  VfioType1Source src(fault, rig.container_fd, OneMapping(0, 8 * kMiB, 8));
  const GpaRange range{0, 8 * kMiB};
  ASSERT_TRUE(src.Start({&range, 1}, kPage).ok());
  for (uint64_t n = 1; n <= 4; ++n) {
    std::set<uint64_t> dirtied;
    for (int i = 0; i < 20; ++i) {
      uint64_t p = rng() % 2048;
      dirtied.insert(p);
      rig.Dma(p * kPage, 1);
    }
    fault.ClearRules();
    fault.AddRule(sim::FaultRule::FailNth(sim::KernelOp::kIoctl, n, EIO)
                      .OnRequest(VFIO_IOMMU_DIRTY_PAGES));
    // Two passes: the failed pass marks, the next returns what was left.
    DirtyBitmap out(2048);
    uint64_t first = 100 * (n - 1);  // windows that cut mappings too
    Status s1 = src.Harvest(first * kPage, 2048 - first, out, first);
    Status s0 = first ? src.Harvest(0, first, out, 0) : OkStatus();
    EXPECT_FALSE(s1.ok() && s0.ok()) << "call " << n << " should fail";
    EXPECT_NE(src.stats().last_error.message().find("vfio-type1"),
              std::string::npos);
    for (uint64_t p : dirtied) ASSERT_TRUE(out.Test(p)) << "lost page " << p;
    // Drain: whatever remains is delivered by a clean pass.
    fault.ClearRules();
    DirtyBitmap rest(2048);
    ASSERT_TRUE(src.Harvest(0, 2048, rest, 0).ok());
  }
  EXPECT_GE(src.stats().errors, 4u);
  EXPECT_GT(src.stats().pages_marked_on_error, 0u);
}

TEST(VfioType1SourceTest, StartErrors) {
  testing::EmulatedRig rig(0, 8 * kMiB);
  VfioType1Source src(rig.kernel, rig.container_fd, OneMapping(0, 8 * kMiB));
  const GpaRange bad{100, 8 * kMiB};
  EXPECT_EQ(src.Start({&bad, 1}, kPage).code(), StatusCode::kInvalidArgument);
  const GpaRange two[] = {{0, 4 * kMiB}, {2 * kMiB, 4 * kMiB}};
  EXPECT_EQ(src.Start(two, kPage).code(), StatusCode::kInvalidArgument);
  DirtyBitmap out(16);
  Status s = src.Harvest(0, 16, out, 0);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(out.Count(), 16u) << "even a refused harvest marks its window";
  sim::FaultKernel fault(rig.kernel);
  fault.AddRule(sim::FaultRule::FailNth(sim::KernelOp::kIoctl, 2, EPERM));
  VfioType1Source failing(fault, rig.container_fd, OneMapping(0, 8 * kMiB));
  const GpaRange ok{0, 8 * kMiB};
  EXPECT_EQ(failing.Start({&ok, 1}, kPage).sys_errno(), EPERM);
  EXPECT_FALSE(failing.started());
}

}  // namespace
}  // namespace converge
