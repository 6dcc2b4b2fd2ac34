#include "iommu/iommufd_source.h"

#include <random>
#include <set>

#include "gtest/gtest.h"
#include "sim/fault_kernel.h"
#include "tests/iommu/emulated_rig.h"

namespace converge {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kPage = 4096;

TEST(IommufdSourceTest, SetupHelpers) {
  testing::EmulatedRig rig(0, 16 * kMiB);
  auto yes = IommufdSource::SupportsDirtyTracking(rig.kernel, rig.iommufd,
                                                  rig.dev_id);
  ASSERT_TRUE(yes.ok());
  EXPECT_TRUE(*yes);
  auto emu = rig.kernel.LookupAs<sim::EmulatedIommufd>(rig.iommufd);
  const uint32_t plain = emu->AddDevice(false);
  EXPECT_FALSE(*IommufdSource::SupportsDirtyTracking(rig.kernel, rig.iommufd,
                                                     plain));
  EXPECT_EQ(IommufdSource::SupportsDirtyTracking(rig.kernel, rig.iommufd, 999)
                .status()
                .sys_errno(),
            ENOENT);
  auto hwpt = IommufdSource::AllocDirtyHwpt(rig.kernel, rig.iommufd,
                                            rig.dev_id, rig.ioas_id);
  EXPECT_TRUE(hwpt.ok());
  EXPECT_EQ(IommufdSource::AllocDirtyHwpt(rig.kernel, rig.iommufd, plain,
                                          rig.ioas_id)
                .status()
                .code(),
            StatusCode::kNotSupported);
}

TEST(IommufdSourceTest, DmaShowsUpExactlyInWindowsAndNoClearKeepsBits) {
  testing::EmulatedRig rig(0, 64 * kMiB);
  IommufdSource::Options o;
  o.max_bytes_per_call = 8 * kMiB;
  IommufdSource src(rig.kernel, rig.iommufd, rig.hwpt_id, o);
  const GpaRange range{0, 64 * kMiB};
  rig.Dma(0, 1);  // before START: cleared by enabling
  ASSERT_TRUE(src.Start({&range, 1}, kPage).ok());
  std::set<uint64_t> want = {1, 2047, 2048, 9000, 16383};
  for (uint64_t p : want) rig.Dma(p * kPage, 1);
  DirtyBitmap keep(16384);
  ASSERT_TRUE(src.HarvestNoClear(0, 16384, keep, 0).ok());
  DirtyBitmap out(16384);
  ASSERT_TRUE(src.Harvest(0, 16384, out, 0).ok());
  EXPECT_EQ(keep, out);
  std::set<uint64_t> got;
  for (const PageRun& r : out.Runs()) {
    for (uint64_t p = r.first; p < r.first + r.count; ++p) got.insert(p);
  }
  EXPECT_EQ(got, want);
  EXPECT_EQ(src.stats().kernel_calls, 16u);  // 2 x 64 MiB in 8 MiB calls
  DirtyBitmap again(16384);
  ASSERT_TRUE(src.Harvest(0, 16384, again, 0).ok());
  EXPECT_EQ(again.Count(), 0u);
  EXPECT_TRUE(src.Stop().ok());
}

TEST(IommufdSourceTest, CoarsePageAndIoasAlignmentWidenWindows) {
  testing::EmulatedRig rig(0, 16 * kMiB);
  IommufdSource::Options o;
  o.page_bytes = 2 * kMiB;
  IommufdSource src(rig.kernel, rig.iommufd, rig.hwpt_id, o);
  const GpaRange range{0, 16 * kMiB};
  ASSERT_TRUE(src.Start({&range, 1}, kPage).ok());
  rig.Dma(6 * kMiB + 100, 1);  // 2 MiB page 3 = RAM pages 1536..2047
  DirtyBitmap out(4096);
  ASSERT_TRUE(src.Harvest(1600 * kPage, 100, out, 1600).ok());
  EXPECT_EQ(out.Runs(), (std::vector<PageRun>{{1600, 100}}));
  ASSERT_TRUE(src.Harvest(0, 1600, out, 0).ok());
  ASSERT_TRUE(src.Harvest(1700 * kPage, 4096 - 1700, out, 1700).ok());
  EXPECT_EQ(out.Runs(), (std::vector<PageRun>{{1536, 512}}));
}

TEST(IommufdSourceTest, InjectedFailureAtEveryCallLosesNoBit) {
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  testing::EmulatedRig rig(0, 32 * kMiB);
  sim::FaultKernel fault(rig.kernel);
  IommufdSource::Options o;
  o.max_bytes_per_call = 4 * kMiB;
  IommufdSource src(fault, rig.iommufd, rig.hwpt_id, o);
  const GpaRange range{0, 32 * kMiB};
  ASSERT_TRUE(src.Start({&range, 1}, kPage).ok());
  for (uint64_t n = 1; n <= 8; ++n) {
    std::set<uint64_t> dirtied;
    for (int i = 0; i < 30; ++i) {
      uint64_t p = rng() % 8192;
      dirtied.insert(p);
      rig.Dma(p * kPage, 1);
    }
    fault.ClearRules();
    fault.AddRule(sim::FaultRule::FailNth(sim::KernelOp::kIoctl, n, EFAULT)
                      .OnRequest(IOMMU_HWPT_GET_DIRTY_BITMAP));
    DirtyBitmap out(8192);
    EXPECT_FALSE(src.Harvest(0, 8192, out, 0).ok());
    for (uint64_t p : dirtied) ASSERT_TRUE(out.Test(p)) << "lost page " << p;
    EXPECT_EQ(out.CountRange((n - 1) * 1024, 1024), 1024u)
        << "the failed call's window is dirty";
  }
  EXPECT_EQ(src.stats().errors, 8u);
  EXPECT_NE(src.stats().last_error.message().find("iommufd"), std::string::npos);
}

}  // namespace
}  // namespace converge
