#include "sim/model_ram_channel.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

namespace converge::sim {
namespace {

constexpr uint64_t kPage = 4096;

struct Fixture {
  VirtualClock clock;
  LinkModel link{LinkOptions{1e9, 0}};  // 1 byte per ns, no latency
  ContentModel content{ContentOptions{}};
  Fixture() {
    content.set_compressed_bytes(PageClass::kText, 1000);
    content.set_compressed_bytes(PageClass::kRandom, 4096);
  }
  // Wire bytes of pages [first, first + count) of a region at base_page.
  uint64_t Cost(uint64_t base_page, uint64_t first, uint64_t count) const {
    uint64_t bytes = 0;
    for (uint64_t p = first; p < first + count; ++p) {
      bytes += content.WireBytes(content.ClassOf(base_page + p));
    }
    return bytes;
  }
};

TEST(ModelRamChannelTest, SendsEveryDirtyPageAtItsClassCost) {
  Fixture f;
  ModelRamChannel channel(f.clock, f.link, f.content, {{0, 1024 * kPage, nullptr}});
  std::vector<DirtyBitmap> bitmaps{DirtyBitmap(1024)};
  bitmaps[0].SetRange(10, 300);
  bitmaps[0].Set(900);
  Result<RamChannelStats> stats = channel.Send(bitmaps, {});
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->pages, 301u);
  EXPECT_TRUE(stats->complete);
  EXPECT_FALSE(bitmaps[0].Any());
  const uint64_t expected = f.Cost(0, 10, 300) + f.Cost(0, 900, 1);
  EXPECT_EQ(stats->wire_bytes, expected);
  // One record per 256-page window holding dirty pages: 10..255,
  // 256..309 and 900.
  EXPECT_EQ(stats->records, 3u);
  // 1 byte per ns.
  EXPECT_NEAR(static_cast<double>(f.clock.NowNs()),
              static_cast<double>(expected), 1.0);
  EXPECT_EQ(channel.total_pages(), 301u);
}

TEST(ModelRamChannelTest, ClassesFollowTheRegionsGuestPageNumbers) {
  Fixture f;
  const uint64_t base_page = 1 << 20;
  ModelRamChannel channel(f.clock, f.link, f.content,
                          {{base_page * kPage, 512 * kPage, nullptr}});
  std::vector<DirtyBitmap> bitmaps{DirtyBitmap(512)};
  bitmaps[0].SetRange(0, 512);
  Result<RamChannelStats> stats = channel.Send(bitmaps, {});
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->wire_bytes, f.Cost(base_page, 0, 512));
  uint64_t zero = 0;
  for (uint64_t p = 0; p < 512; ++p) {
    zero += f.content.ClassOf(base_page + p) == PageClass::kZero;
  }
  EXPECT_EQ(stats->zero_pages, zero);
  EXPECT_EQ(channel.total_zero_pages(), zero);
}

TEST(ModelRamChannelTest, ByteBudgetStopsBetweenRecordsAndResumes) {
  Fixture f;
  ModelRamChannel channel(f.clock, f.link, f.content, {{0, 4096 * kPage, nullptr}});
  std::vector<DirtyBitmap> bitmaps{DirtyBitmap(4096)};
  bitmaps[0].SetRange(0, 4096);
  RamChannelBudget budget;
  budget.max_bytes = 1;  // one record, then stop
  Result<RamChannelStats> first = channel.Send(bitmaps, budget);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->records, 1u);
  EXPECT_EQ(first->pages, 256u);
  EXPECT_FALSE(first->complete);
  EXPECT_EQ(bitmaps[0].Count(), 4096u - 256u);
  EXPECT_FALSE(bitmaps[0].Test(0));
  Result<RamChannelStats> rest = channel.Send(bitmaps, {});
  ASSERT_TRUE(rest.ok());
  EXPECT_EQ(rest->pages, 4096u - 256u);
  EXPECT_TRUE(rest->complete);
}

TEST(ModelRamChannelTest, DeadlineOnTheVirtualClockStopsTheSend) {
  Fixture f;
  ModelRamChannel channel(f.clock, f.link, f.content, {{0, 8192 * kPage, nullptr}});
  std::vector<DirtyBitmap> bitmaps{DirtyBitmap(8192)};
  bitmaps[0].SetRange(0, 8192);
  RamChannelBudget budget;
  budget.deadline_ns = f.clock.NowNs() + 100'000;  // 100 KB at 1 B/ns
  Result<RamChannelStats> stats = channel.Send(bitmaps, budget);
  ASSERT_TRUE(stats.ok());
  EXPECT_FALSE(stats->complete);
  EXPECT_GE(f.clock.NowNs(), budget.deadline_ns);
  // It stops within one record of the deadline.
  EXPECT_LT(f.clock.NowNs(), budget.deadline_ns + 256 * (kPage + 16));
  EXPECT_EQ(bitmaps[0].Count(), 8192u - stats->pages);
}

TEST(ModelRamChannelTest, SeveralRegionsAndAPropertyOverRandomBitmaps) {
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  Fixture f;
  std::vector<GuestRegion> regions{{0, 700 * kPage, nullptr}, {4096 * kPage, 1000 * kPage, nullptr}};
  ModelRamChannel channel(f.clock, f.link, f.content, regions);
  std::vector<DirtyBitmap> bitmaps{DirtyBitmap(700), DirtyBitmap(1000)};
  uint64_t expected_pages = 0, expected_bytes = 0;
  for (size_t r = 0; r < 2; ++r) {
    for (uint64_t p = 0; p < bitmaps[r].num_pages(); ++p) {
      if (rng() % 3 == 0) {
        bitmaps[r].Set(p);
        ++expected_pages;
        expected_bytes += f.Cost(regions[r].gpa / kPage, p, 1);
      }
    }
  }
  uint64_t pages = 0, bytes = 0;
  for (int i = 0; i < 100; ++i) {  // small budgets: many resumed sends
    RamChannelBudget budget;
    budget.max_bytes = 1 + rng() % 20000;
    Result<RamChannelStats> s = channel.Send(bitmaps, budget);
    ASSERT_TRUE(s.ok());
    pages += s->pages;
    bytes += s->wire_bytes;
    if (s->complete) break;
  }
  EXPECT_EQ(pages, expected_pages);
  EXPECT_EQ(bytes, expected_bytes);
  EXPECT_FALSE(bitmaps[0].Any());
  EXPECT_FALSE(bitmaps[1].Any());
}

TEST(ModelRamChannelTest, MismatchedBitmapsAreErrorsNamingTheSizes) {
  Fixture f;
  ModelRamChannel channel(f.clock, f.link, f.content, {{0, 64 * kPage, nullptr}});
  std::vector<DirtyBitmap> none;
  Result<RamChannelStats> s = channel.Send(none, {});
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("0 bitmaps for 1 regions"),
            std::string::npos);
  std::vector<DirtyBitmap> wrong{DirtyBitmap(65)};
  s = channel.Send(wrong, {});
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("has 65 pages, region has 64"),
            std::string::npos);
}

}  // namespace
}  // namespace converge::sim
