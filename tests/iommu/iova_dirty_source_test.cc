// HarvestIntoZeroed of the IOVA-indexed sources (VFIO type1, iommufd, DMA
// logging): kernel calls that line up with the caller's clean window write
// straight into it, the others go through the bounce buffer, and the result
// must equal Harvest() on the same kernel state, with the set words listed.

#include "iommu/iova_dirty_source.h"

#include <bit>
#include <functional>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

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
constexpr uint64_t kRamBytes = 32 * kMiB;  // 8192 RAM pages
constexpr uint64_t kRamPages = kRamBytes / kPage;
// The guest sees its RAM at 4 GiB in the translated configurations.
constexpr uint64_t kTranslatedGpa = uint64_t{4} << 30;

std::vector<uint64_t> SetWords(const DirtyBitmap& b, uint64_t words) {
  std::vector<uint64_t> out;
  for (uint64_t i = 0; i < words; ++i) {
    if (b.words()[i] != 0) out.push_back(i);
  }
  return out;
}

struct Config {
  const char* name;
  sim::EmulatedType1Options type1;
  uint32_t mappings;
  uint64_t gpa;  // where the tracked RAM is; the rig's IOVA is always 0
  uint64_t window_pages;
  std::function<std::unique_ptr<IovaDirtySource>(testing::EmulatedRig&,
                                                 Kernel&)>
      make;
};

IovaTable Translated(uint64_t gpa) {
  IovaTable t;
  if (gpa != 0) {
    EXPECT_TRUE(t.Add(IovaMapping{gpa, 0, kRamBytes}).ok());
  }
  return t;
}

std::vector<Config> Configs() {
  auto type1 = [](uint64_t gpa, uint32_t mappings) {
    return [gpa, mappings](testing::EmulatedRig& rig, Kernel& k) {
      VfioType1Source::Options o;
      o.iova_table = Translated(gpa);
      for (uint32_t i = 0; i < mappings; ++i) {
        o.mappings.push_back({i * (kRamBytes / mappings), kRamBytes / mappings});
      }
      return std::unique_ptr<IovaDirtySource>(
          new VfioType1Source(k, rig.container_fd, std::move(o)));
    };
  };
  auto iommufd = [](uint64_t gpa, uint64_t page, uint64_t max_call) {
    return [=](testing::EmulatedRig& rig, Kernel& k) {
      IommufdSource::Options o;
      o.iova_table = Translated(gpa);
      o.page_bytes = page;
      o.max_bytes_per_call = max_call;
      return std::unique_ptr<IovaDirtySource>(
          new IommufdSource(k, rig.iommufd, rig.hwpt_id, std::move(o)));
    };
  };
  auto dma_log = [](uint64_t gpa, uint64_t max_report) {
    return [=](testing::EmulatedRig& rig, Kernel& k) {
      DmaLoggingSource::Options o;
      o.iova_table = Translated(gpa);
      o.max_bytes_per_report = max_report;
      return std::unique_ptr<IovaDirtySource>(
          new DmaLoggingSource(k, rig.device_fd, std::move(o)));
    };
  };
  const uint64_t big = uint64_t{64} << 30;
  return {
      // Calls of whole 1 MiB mappings: every call lines up (direct).
      {"type1, 32 mappings", {4096, 1 << 20, true}, 32, 0, 2048,
       type1(0, 32)},
      // 2 MiB IOMMU pages: rescaled through the bounce buffer; 1000-page
      // windows cut 2 MiB pages, so bits are held back and delivered later.
      {"type1, 2 MiB pages", {2 * kMiB, 1 << 20, true}, 1, 0, 1000,
       type1(0, 1)},
      {"type1, translated", {4096, 1 << 20, true}, 4, kTranslatedGpa, 2048,
       type1(kTranslatedGpa, 4)},
      {"iommufd, one call per window", {}, 1, 0, 4096,
       iommufd(0, kPage, big)},
      // 100-page calls: most start off a 64-page boundary (bounce), some
      // on one (direct), and the window's last call is short.
      {"iommufd, 100-page calls", {}, 1, 0, 1000,
       iommufd(0, kPage, 100 * kPage)},
      {"iommufd, 2 MiB pages", {}, 1, 0, 1000, iommufd(0, 2 * kMiB, big)},
      {"iommufd, translated", {}, 1, kTranslatedGpa, 3000,
       iommufd(kTranslatedGpa, kPage, 1024 * kPage)},
      {"dma logging", {}, 1, 0, 8192, dma_log(0, big)},
      {"dma logging, 192-page reports", {}, 1, kTranslatedGpa, 700,
       dma_log(kTranslatedGpa, 192 * kPage)},
  };
}

// Two identical rigs get the same DMA; one is harvested with Harvest(), the
// other with HarvestIntoZeroed(), window by window, several rounds.
TEST(IovaDirtySourceTest, HarvestIntoZeroedEqualsHarvest) {
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  for (const Config& c : Configs()) {
    SCOPED_TRACE(c.name);
    std::mt19937_64 rng(seed);
    testing::EmulatedRig rig_a(0, kRamBytes, c.type1, c.mappings);
    testing::EmulatedRig rig_b(0, kRamBytes, c.type1, c.mappings);
    auto a = c.make(rig_a, rig_a.kernel);
    auto b = c.make(rig_b, rig_b.kernel);
    const GpaRange range{c.gpa, kRamBytes};
    ASSERT_TRUE(a->Start({&range, 1}, kPage).ok());
    ASSERT_TRUE(b->Start({&range, 1}, kPage).ok());
    for (int round = 0; round < 4; ++round) {
      const int writes = round == 3 ? 3000 : 40;  // the last round dense
      for (int i = 0; i < writes; ++i) {
        const uint64_t iova = rng() % kRamPages * kPage + rng() % kPage;
        const uint64_t len = 1 + rng() % (3 * kPage);
        rig_a.Dma(iova, std::min(len, kRamBytes - iova));
        rig_b.Dma(iova, std::min(len, kRamBytes - iova));
      }
      for (uint64_t p = 0; p < kRamPages; p += c.window_pages) {
        const uint64_t n = std::min(c.window_pages, kRamPages - p);
        const uint64_t words = (n + 63) / 64;
        DirtyBitmap want(n), got(n + 100);
        ASSERT_TRUE(a->Harvest(c.gpa + p * kPage, n, want, 0).ok());
        const uint64_t before = b->stats().pages_reported;
        std::vector<uint64_t> listed{99999};
        ASSERT_TRUE(
            b->HarvestIntoZeroed(c.gpa + p * kPage, n, got, listed).ok());
        for (uint64_t i = 0; i < n; ++i) {
          ASSERT_EQ(got.Test(i), want.Test(i))
              << "round " << round << " page " << p + i;
        }
        EXPECT_EQ(got.CountRange(n, 100), 0u) << "wrote past the window";
        std::vector<uint64_t> expect_listed{99999};
        for (uint64_t w : SetWords(got, words)) expect_listed.push_back(w);
        ASSERT_EQ(listed, expect_listed) << "round " << round << " at " << p;
        EXPECT_EQ(b->stats().pages_reported - before, got.Count());
      }
      EXPECT_EQ(a->pending_pages(), b->pending_pages());
      EXPECT_EQ(a->stats().kernel_calls, b->stats().kernel_calls);
    }
  }
}

// The 2 MiB-page window that cuts a huge page: the rest is held back and
// delivered by the next harvest of it, into a clean window too.
TEST(IovaDirtySourceTest, HeldBackBitsReachTheNextZeroedWindow) {
  testing::EmulatedRig rig(0, 16 * kMiB, {2 * kMiB, 1 << 20, true});
  VfioType1Source src(rig.kernel, rig.container_fd,
                      VfioType1Source::Options{{}, {{0, 16 * kMiB}}});
  const GpaRange range{0, 16 * kMiB};
  ASSERT_TRUE(src.Start({&range, 1}, kPage).ok());
  rig.Dma(4 * kMiB, 1);  // RAM pages 1024..1535
  DirtyBitmap part(1100);
  std::vector<uint64_t> listed;
  ASSERT_TRUE(src.HarvestIntoZeroed(0, 1100, part, listed).ok());
  EXPECT_EQ(part.Runs(), (std::vector<PageRun>{{1024, 76}}));
  EXPECT_EQ(src.pending_pages(), 512u - 76u);
  DirtyBitmap rest(4096 - 1100);
  listed.clear();
  ASSERT_TRUE(
      src.HarvestIntoZeroed(1100 * kPage, 4096 - 1100, rest, listed).ok());
  EXPECT_EQ(rest.Runs(), (std::vector<PageRun>{{0, 1536 - 1100}}));
  EXPECT_EQ(listed.size(), (1536u - 1100u + 63u) / 64u);
  EXPECT_EQ(src.pending_pages(), 0u);
}

// A window inside one type1 mapping reads the whole mapping, so the rest
// of it waits; a later window whose calls the kernel writes straight into
// gets those bits ORed in after the calls.
TEST(IovaDirtySourceTest, PendingBitsJoinAKernelWrittenWindow) {
  testing::EmulatedRig rig(0, 8 * kMiB, {4096, 1 << 20, true}, 4);
  VfioType1Source::Options o;
  for (uint64_t i = 0; i < 4; ++i) o.mappings.push_back({i * 2 * kMiB, 2 * kMiB});
  VfioType1Source src(rig.kernel, rig.container_fd, std::move(o));
  const GpaRange range{0, 8 * kMiB};
  ASSERT_TRUE(src.Start({&range, 1}, kPage).ok());
  rig.Dma(10 * kPage, 1);
  rig.Dma(300 * kPage, 1);
  DirtyBitmap first(256);
  std::vector<uint64_t> listed;
  ASSERT_TRUE(src.HarvestIntoZeroed(0, 256, first, listed).ok());
  EXPECT_EQ(first.Runs(), (std::vector<PageRun>{{10, 1}}));
  EXPECT_EQ(src.pending_pages(), 1u);  // page 300, read with mapping 0
  rig.Dma(20 * kPage, 1);
  rig.Dma(700 * kPage, 1);
  const uint64_t calls = src.stats().kernel_calls;
  const uint64_t reported = src.stats().pages_reported;
  DirtyBitmap second(1024);
  listed.clear();
  ASSERT_TRUE(src.HarvestIntoZeroed(0, 1024, second, listed).ok());
  EXPECT_EQ(src.stats().kernel_calls - calls, 1u);  // mappings 0 and 1
  EXPECT_EQ(second.Runs(),
            (std::vector<PageRun>{{20, 1}, {300, 1}, {700, 1}}));
  EXPECT_EQ(listed, (std::vector<uint64_t>{0, 4, 10}));
  EXPECT_EQ(src.stats().pages_reported - reported, 3u);
  EXPECT_EQ(src.pending_pages(), 0u);
}

// A failed call into a clean window: the window is marked and listed whole,
// the marked pages are counted as such, and no bit is lost.
TEST(IovaDirtySourceTest, FailedCallIntoZeroedWindowMarksAndListsIt) {
  struct Case {
    const char* what;
    unsigned long request;
    uint64_t fail_call;
  };
  const Case cases[] = {
      {"first call", IOMMU_HWPT_GET_DIRTY_BITMAP, 1},
      {"third call", IOMMU_HWPT_GET_DIRTY_BITMAP, 3},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    testing::EmulatedRig rig(0, 16 * kMiB);
    sim::FaultKernel fault(rig.kernel);
    IommufdSource::Options o;
    o.max_bytes_per_call = 1 * kMiB;  // 256 pages a call
    IommufdSource src(fault, rig.iommufd, rig.hwpt_id, o);
    const GpaRange range{0, 16 * kMiB};
    ASSERT_TRUE(src.Start({&range, 1}, kPage).ok());
    for (uint64_t p : {3, 300, 900}) rig.Dma(p * kPage, 1);
    fault.AddRule(sim::FaultRule::FailNth(sim::KernelOp::kIoctl, c.fail_call,
                                          EFAULT)
                      .OnRequest(c.request));
    DirtyBitmap out(1000);
    std::vector<uint64_t> listed;
    Status s = src.HarvestIntoZeroed(0, 1000, out, listed);
    EXPECT_EQ(s.sys_errno(), EFAULT);
    EXPECT_NE(s.message().find("iommufd: harvest of gpa 0x0"),
              std::string::npos)
        << s.ToString();
    EXPECT_EQ(out.Count(), 1000u);
    EXPECT_EQ(listed.size(), 16u);
    EXPECT_EQ(src.stats().pages_marked_on_error, 1000u);
    EXPECT_EQ(src.stats().pages_reported, 0u);
    // What the failed and later calls did not read is still in the kernel.
    fault.ClearRules();
    DirtyBitmap again(1000);
    listed.clear();
    ASSERT_TRUE(src.HarvestIntoZeroed(0, 1000, again, listed).ok());
    again.ForEachRun([](PageRun r) {
      for (uint64_t p = r.first; p < r.first + r.count; ++p) {
        EXPECT_TRUE(p == 3 || p == 300 || p == 900) << "page " << p;
      }
    });
    EXPECT_EQ(listed, SetWords(again, 16));
  }
}

// DMA logging loses its log on a failed REPORT: the clean window is marked,
// tracking restarts, and every other page is delivered as pending.
TEST(IovaDirtySourceTest, DmaLoggingRestartIntoZeroedWindows) {
  testing::EmulatedRig rig(0, 16 * kMiB);
  sim::FaultKernel fault(rig.kernel);
  DmaLoggingSource src(fault, rig.device_fd, {});
  const GpaRange range{0, 16 * kMiB};
  ASSERT_TRUE(src.Start({&range, 1}, kPage).ok());
  fault.AddRule(sim::FaultRule::FailNth(sim::KernelOp::kIoctl, 1, EIO)
                    .OnRequest(VFIO_DEVICE_FEATURE));
  DirtyBitmap out(1024);
  std::vector<uint64_t> listed;
  EXPECT_EQ(src.HarvestIntoZeroed(0, 1024, out, listed).sys_errno(), EIO);
  EXPECT_EQ(out.Count(), 1024u);
  EXPECT_EQ(src.stats().restarts, 1u);
  fault.ClearRules();
  DirtyBitmap next(4096 - 1024);
  listed.clear();
  ASSERT_TRUE(
      src.HarvestIntoZeroed(1024 * kPage, 4096 - 1024, next, listed).ok());
  EXPECT_EQ(next.Count(), 4096u - 1024u) << "the lost log's pages";
  EXPECT_EQ(listed.size(), 48u);
  // The restart made every tracked page pending, the failed window's too.
  EXPECT_EQ(src.pending_pages(), 1024u);
}

TEST(IovaDirtySourceTest, ZeroedWindowArgumentErrors) {
  testing::EmulatedRig rig(0, 16 * kMiB);
  IommufdSource src(rig.kernel, rig.iommufd, rig.hwpt_id, {});
  DirtyBitmap out(64);
  std::vector<uint64_t> listed;
  Status s = src.HarvestIntoZeroed(0, 64, out, listed);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(out.Count(), 64u) << "a refused harvest marks its window";
  EXPECT_EQ(listed.size(), 1u);
  const GpaRange range{0, 16 * kMiB};
  ASSERT_TRUE(src.Start({&range, 1}, kPage).ok());
  DirtyBitmap small(10);
  listed.clear();
  s = src.HarvestIntoZeroed(0, 64, small, listed);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("does not fit"), std::string::npos);
  EXPECT_TRUE(listed.empty());
  DirtyBitmap outside(64);
  s = src.HarvestIntoZeroed(16 * kMiB, 64, outside, listed);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(outside.Count(), 64u);
}

}  // namespace
}  // namespace converge
