#include "iommu/dirty_tracker.h"

#include <atomic>
#include <random>
#include <set>
#include <string>
#include <thread>
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

// A source kept in memory that only implements Harvest(): the tracker
// reaches it through the default HarvestIntoZeroed.
class MemorySource final : public DirtySource {
 public:
  std::string_view name() const override { return "memory"; }
  Status Start(std::span<const GpaRange>, uint64_t ram_page_size) override {
    page_bytes_ = ram_page_size;
    return OkStatus();
  }
  Status Harvest(uint64_t gpa, uint64_t num_pages, DirtyBitmap& out,
                 uint64_t out_first_page) override {
    ++stats_.harvests;
    const uint64_t first = gpa / page_bytes_;
    for (auto it = dirty.lower_bound(first);
         it != dirty.end() && *it < first + num_pages;) {
      out.Set(out_first_page + (*it - first));
      ++stats_.pages_reported;
      it = dirty.erase(it);
    }
    return OkStatus();
  }
  Status Stop() override { return OkStatus(); }
  DirtySourceLimits limits() const override { return {}; }

  std::set<uint64_t> dirty;  // GPA page numbers
 private:
  uint64_t page_bytes_ = 4096;
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

// Random device DMA (all three kernel sources), IOMMU-only writes and a
// memory source over two regions, one of them not a whole number of words
// or windows, sparse and dense rounds: every sync's bitmaps are the exact
// union, and the per-source counts match the reference sets.
TEST(DirtyTrackerTest, SyncEqualsReferenceUnionAndCounts) {
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  constexpr uint64_t kRigBytes = 128 * kMiB;
  // 4 MiB type1 mappings, so a 4096-page window holds whole mappings.
  testing::EmulatedRig rig(0, kRigBytes, {}, 32);
  std::vector<IovaSpan> mappings;
  for (uint64_t at = 0; at < kRigBytes; at += 4 * kMiB) {
    mappings.push_back({at, 4 * kMiB});
  }
  VfioType1Source type1(rig.kernel, rig.container_fd,
                        VfioType1Source::Options{{}, mappings});
  IommufdSource iommufd(rig.kernel, rig.iommufd, rig.hwpt_id, {});
  DmaLoggingSource dma_log(rig.kernel, rig.device_fd, {});
  MemorySource memory;
  const RamRegion regions[] = {{0, 40 * kMiB, nullptr},
                               {64 * kMiB, 20 * kMiB + 10 * kPage, nullptr}};
  DirtyTracker tracker({regions[0], regions[1]},
                       DirtyTracker::Options{kPage, 4096});
  tracker.AddSource(&type1);
  tracker.AddSource(&iommufd);
  tracker.AddSource(&dma_log);
  tracker.AddSource(&memory);
  ASSERT_TRUE(tracker.Start().ok());
  auto tracked = [&](uint64_t page) {
    for (const RamRegion& r : regions) {
      if (page >= r.gpa / kPage && page < (r.gpa + r.bytes) / kPage) {
        return true;
      }
    }
    return false;
  };
  for (int round = 0; round < 6; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const int writes = round % 3 == 2 ? 5000 : 60;
    std::set<uint64_t> by[4];  // GPA pages each source should report
    for (int i = 0; i < writes; ++i) {
      const uint64_t page = rng() % (kRigBytes / kPage);
      const uint64_t pages = 1 + rng() % 3;
      switch (rng() % 3) {
        case 0:
          rig.Dma(page * kPage, pages * kPage);
          for (uint64_t p = page; p < page + pages; ++p) {
            for (int s = 0; s < 3; ++s) by[s].insert(p);
          }
          break;
        case 1:
          rig.kernel.NotifyDma(page * kPage, pages * kPage);
          for (uint64_t p = page; p < page + pages; ++p) {
            by[0].insert(p);
            by[1].insert(p);
          }
          break;
        default:
          for (uint64_t p = page; p < page + pages; ++p) {
            if (tracked(p)) memory.dirty.insert(p);
            by[3].insert(p);
          }
          break;
      }
    }
    for (auto& set : by) std::erase_if(set, [&](uint64_t p) { return !tracked(p); });
    ASSERT_TRUE(tracker.Sync().ok());
    std::set<uint64_t> all;
    for (const auto& set : by) all.insert(set.begin(), set.end());
    std::set<uint64_t> got;
    for (size_t r = 0; r < tracker.num_regions(); ++r) {
      tracker.bitmap(r).ForEachRun([&](PageRun run) {
        for (uint64_t p = run.first; p < run.first + run.count; ++p) {
          got.insert(regions[r].gpa / kPage + p);
        }
      });
      tracker.bitmap(r).ClearAll();
    }
    ASSERT_EQ(got, all);
    for (size_t s = 0; s < 4; ++s) {
      uint64_t unique = 0;
      for (uint64_t p : by[s]) {
        bool others = false;
        for (size_t o = 0; o < 4; ++o) others |= o != s && by[o].count(p) != 0;
        unique += others ? 0 : 1;
      }
      EXPECT_EQ(tracker.last_sync(s).pages_reported, by[s].size())
          << tracker.source(s).name();
      EXPECT_EQ(tracker.last_sync(s).pages_unique, unique)
          << tracker.source(s).name();
    }
  }
  // Nothing written since: a sync finds nothing (the scratch is clean).
  ASSERT_TRUE(tracker.Sync().ok());
  for (size_t r = 0; r < tracker.num_regions(); ++r) {
    EXPECT_FALSE(tracker.bitmap(r).Any());
  }
  for (size_t s = 0; s < 4; ++s) EXPECT_EQ(tracker.last_sync(s).pages_reported, 0u);
}

}  // namespace
}  // namespace converge
