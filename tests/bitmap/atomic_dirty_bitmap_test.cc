#include "bitmap/atomic_dirty_bitmap.h"

#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>
#include <vector>

namespace converge {
namespace {

TEST(AtomicDirtyBitmapTest, SetTestAndHarvest) {
  for (uint64_t n : {1, 63, 64, 65, 4095, 4096, 4097}) {
    SCOPED_TRACE(n);
    AtomicDirtyBitmap a(n);
    EXPECT_EQ(a.num_pages(), n);
    a.Set(0);
    a.Set(n - 1);
    if (n > 2) a.SetRange(n / 3, n / 3);
    EXPECT_TRUE(a.Test(0));
    EXPECT_TRUE(a.Test(n - 1));
    DirtyBitmap want(n);
    want.Set(0);
    want.Set(n - 1);
    if (n > 2) want.SetRange(n / 3, n / 3);
    EXPECT_EQ(a.Count(), want.Count());

    DirtyBitmap out(n);
    out.Set(n / 2);  // harvests OR into out
    want.Set(n / 2);
    a.HarvestInto(out);
    EXPECT_EQ(out, want);
    EXPECT_EQ(a.Count(), 0u);
    DirtyBitmap again(n);
    a.HarvestInto(again);
    EXPECT_EQ(again.Count(), 0u);
  }
}

TEST(AtomicDirtyBitmapTest, SetRangeAcrossWords) {
  AtomicDirtyBitmap a(300);
  a.SetRange(60, 200);
  a.SetRange(299, 1);
  a.SetRange(5, 0);
  DirtyBitmap out(300);
  a.HarvestInto(out);
  EXPECT_EQ(out.Runs(), (std::vector<PageRun>{{60, 200}, {299, 1}}));
}

// Range harvests take exactly the range and leave the bits around it.
TEST(AtomicDirtyBitmapTest, HarvestRangeLeavesTheRest) {
  struct Case {
    uint64_t first, count;
  };
  const Case cases[] = {{0, 0}, {0, 300}, {10, 5}, {60, 10}, {64, 64},
                        {1, 298}, {299, 1}, {100, 150}};
  for (const Case& c : cases) {
    SCOPED_TRACE(testing::Message() << c.first << "+" << c.count);
    AtomicDirtyBitmap a(300);
    a.SetRange(0, 300);
    DirtyBitmap out(300);
    a.HarvestRangeInto(c.first, c.count, out);
    EXPECT_EQ(out.Count(), c.count);
    EXPECT_EQ(out.CountRange(c.first, c.count), c.count);
    EXPECT_EQ(a.Count(), 300 - c.count);
    for (uint64_t p = 0; p < 300; ++p) {
      ASSERT_EQ(a.Test(p), !(p >= c.first && p < c.first + c.count)) << p;
    }
  }
}

// Producers set random pages and ranges while one thread harvests (whole
// and by range) over and over: the union of the harvests is exactly the
// union of what was set.
TEST(AtomicDirtyBitmapTest, ConcurrentProducersOneHarvesterLoseNothing) {
  constexpr uint64_t kPages = uint64_t{1} << 18;
  constexpr int kProducers = 3;
  constexpr int kOpsPerProducer = 300000;
  AtomicDirtyBitmap a(kPages);
  std::vector<DirtyBitmap> set_by(kProducers, DirtyBitmap(kPages));
  std::atomic<int> running{kProducers};
  std::vector<std::thread> producers;
  for (int t = 0; t < kProducers; ++t) {
    producers.emplace_back([&, t] {
      std::mt19937_64 rng(1000 + t);
      DirtyBitmap& mine = set_by[t];
      for (int i = 0; i < kOpsPerProducer; ++i) {
        if (rng() % 8 == 0) {
          uint64_t first = rng() % kPages;
          uint64_t count = std::min<uint64_t>(rng() % 300, kPages - first);
          a.SetRange(first, count);
          mine.SetRange(first, count);
        } else {
          uint64_t page = rng() % kPages;
          a.Set(page);
          mine.Set(page);
        }
      }
      running.fetch_sub(1, std::memory_order_release);
    });
  }
  DirtyBitmap harvested(kPages);
  std::mt19937_64 rng(7);
  int harvests = 0;
  while (running.load(std::memory_order_acquire) > 0) {
    if (harvests % 3 == 2) {
      uint64_t first = rng() % kPages;
      a.HarvestRangeInto(first, rng() % (kPages - first), harvested);
    } else {
      a.HarvestInto(harvested);
    }
    ++harvests;
  }
  for (std::thread& t : producers) t.join();
  a.HarvestInto(harvested);

  DirtyBitmap want(kPages);
  for (const DirtyBitmap& b : set_by) want.MergeFrom(b);
  EXPECT_EQ(harvested.Count(), want.Count()) << harvests << " harvests";
  EXPECT_TRUE(harvested == want) << "harvests lost or invented bits";
  EXPECT_EQ(a.Count(), 0u);
}

// A producer writes a page, then marks it; whoever harvests the mark must
// see the write (release Set, acquire harvest). Each page is written once,
// so the payload itself is race-free exactly when the ordering holds.
TEST(AtomicDirtyBitmapTest, ConcurrentHarvestSeesWritesBeforeSet) {
  constexpr uint64_t kPages = uint64_t{1} << 16;
  constexpr uint64_t kProducers = 2;
  AtomicDirtyBitmap a(kPages);
  std::vector<uint64_t> payload(kPages, 0);
  std::atomic<uint64_t> running{kProducers};
  std::vector<std::thread> producers;
  for (uint64_t t = 0; t < kProducers; ++t) {
    producers.emplace_back([&, t] {
      for (uint64_t p = t; p < kPages; p += kProducers) {
        payload[p] = p + 1;
        a.Set(p);
      }
      running.fetch_sub(1, std::memory_order_release);
    });
  }
  DirtyBitmap seen(kPages);
  uint64_t bad = 0;
  auto check = [&] {
    DirtyBitmap got(kPages);
    a.HarvestInto(got);
    got.ForEachRun([&](PageRun r) {
      for (uint64_t p = r.first; p < r.first + r.count; ++p) {
        if (payload[p] != p + 1) ++bad;
      }
    });
    seen.MergeFrom(got);
  };
  while (running.load(std::memory_order_acquire) > 0) check();
  for (std::thread& t : producers) t.join();
  check();
  EXPECT_EQ(bad, 0u);
  EXPECT_EQ(seen.Count(), kPages);
}

}  // namespace
}  // namespace converge
