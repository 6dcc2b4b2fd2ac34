#include "sim/workload_model.h"

#include <gtest/gtest.h>

#include "sim/virtual_clock.h"

namespace converge::sim {
namespace {

constexpr uint64_t kSecondNs = 1000000000;

TEST(WorkloadModelTest, ParsesNamesAndRejectsUnknown) {
  for (const char* name : {"seq", "random", "hotcold", "idle", "burst"}) {
    Result<WorkloadKind> k = ParseWorkload(name);
    ASSERT_TRUE(k.ok()) << name;
    EXPECT_EQ(WorkloadName(*k), name);
  }
  Result<WorkloadKind> bad = ParseWorkload("heavy");
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("'heavy'"), std::string::npos);
}

TEST(WorkloadModelTest, WriteCountFollowsRateAndThrottle) {
  WorkloadOptions o;
  o.kind = WorkloadKind::kRandom;
  o.writes_per_second = 1000;
  WorkloadModel m(1 << 20, o);
  DirtyBitmap b(1 << 20);
  m.RunUntil(0, b);
  EXPECT_EQ(b.Count(), 0u);  // the first call sets the origin
  m.RunUntil(2 * kSecondNs, b);
  EXPECT_EQ(m.writes(), 2000u);
  m.set_throttle(0.75);
  m.RunUntil(4 * kSecondNs, b);
  EXPECT_EQ(m.writes(), 2500u);
  m.set_paused(true);
  m.RunUntil(9 * kSecondNs, b);
  EXPECT_EQ(m.writes(), 2500u);
  EXPECT_LE(b.Count(), 2500u);
  EXPECT_GT(b.Count(), 2400u);  // few collisions in 1 Mi pages
}

TEST(WorkloadModelTest, SequentialSweepWraps) {
  WorkloadOptions o;
  o.kind = WorkloadKind::kSeq;
  o.writes_per_second = 100;
  WorkloadModel m(150, o);
  DirtyBitmap b(150);
  m.RunUntil(0, b);
  m.RunUntil(kSecondNs, b);
  EXPECT_EQ(b.Runs(), (std::vector<PageRun>{{0, 100}}));
  b.ClearAll();
  m.RunUntil(kSecondNs + kSecondNs / 2, b);  // 50 more: 100..149
  m.RunUntil(2 * kSecondNs, b);              // 50 more: wraps to 0..49
  EXPECT_EQ(b.Runs(), (std::vector<PageRun>{{0, 50}, {100, 50}}));
}

TEST(WorkloadModelTest, HotColdConcentratesWrites) {
  WorkloadOptions o;
  o.kind = WorkloadKind::kHotCold;
  o.writes_per_second = 100000;
  const uint64_t pages = 100000;
  WorkloadModel m(pages, o);
  DirtyBitmap b(pages);
  m.RunUntil(0, b);
  m.RunUntil(kSecondNs, b);
  // The hot 10 % is saturated; the cold 90 % sees ~10 % of the writes.
  EXPECT_GT(b.CountRange(0, pages / 10), pages / 10 * 99 / 100);
  EXPECT_LT(b.CountRange(pages / 10, pages - pages / 10), pages / 10);
}

TEST(WorkloadModelTest, IdleAndBurstPhases) {
  WorkloadOptions o;
  o.kind = WorkloadKind::kIdle;
  WorkloadModel idle(1000, o);
  DirtyBitmap b(1000);
  idle.RunUntil(0, b);
  idle.RunUntil(10 * kSecondNs, b);
  EXPECT_EQ(idle.writes(), 0u);

  o.kind = WorkloadKind::kBurst;
  o.writes_per_second = 1000;
  o.burst_on_ms = 100;
  o.burst_off_ms = 900;
  WorkloadModel burst(1 << 20, o);
  DirtyBitmap c(1 << 20);
  burst.RunUntil(0, c);
  burst.RunUntil(kSecondNs / 10, c);  // the whole "on" phase: 100 writes
  EXPECT_EQ(burst.writes(), 100u);
  burst.RunUntil(kSecondNs, c);  // "off": nothing
  EXPECT_EQ(burst.writes(), 100u);
  burst.RunUntil(10 * kSecondNs, c);  // nine more periods
  EXPECT_EQ(burst.writes(), 1000u);
}

TEST(ModelDirtySourceTest, HarvestMovesBitsOutOnce) {
  VirtualClock clock;
  WorkloadOptions o;
  o.kind = WorkloadKind::kSeq;
  o.writes_per_second = 64;
  WorkloadModel m(256, o);
  ModelDirtySource src(clock, m);
  GpaRange range{0, 256 * 4096};
  ASSERT_TRUE(src.Start({&range, 1}, 4096).ok());

  // Initially everything is dirty (the first pass sends all of RAM).
  DirtyBitmap out(256);
  ASSERT_TRUE(src.Harvest(0, 256, out, 0).ok());
  EXPECT_EQ(out.Count(), 256u);

  out.ClearAll();
  ASSERT_TRUE(src.Harvest(0, 256, out, 0).ok());
  EXPECT_EQ(out.Count(), 0u);  // nothing new: time did not move

  clock.AdvanceNs(kSecondNs);  // 64 sequential writes: pages 0..63
  ASSERT_TRUE(src.Harvest(4096 * 32, 224, out, 32).ok());
  EXPECT_EQ(out.Runs(), (std::vector<PageRun>{{32, 32}}));
  ASSERT_TRUE(src.Harvest(0, 32, out, 0).ok());
  EXPECT_EQ(out.Runs(), (std::vector<PageRun>{{0, 64}}));
  EXPECT_EQ(src.stats().pages_reported, 256u + 64u);
}

TEST(ModelDirtySourceTest, RejectsBadWindows) {
  VirtualClock clock;
  WorkloadModel m(128, WorkloadOptions{});
  ModelDirtySource src(clock, m);
  DirtyBitmap out(128);
  EXPECT_EQ(src.Harvest(0, 1, out, 0).code(), StatusCode::kFailedPrecondition);
  GpaRange wrong{0, 64 * 4096};
  EXPECT_EQ(src.Start({&wrong, 1}, 4096).code(), StatusCode::kInvalidArgument);
  GpaRange range{0, 128 * 4096};
  ASSERT_TRUE(src.Start({&range, 1}, 4096).ok());
  EXPECT_EQ(src.Harvest(0, 129, out, 0).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(src.Harvest(100 * 4096, 28, out, 101).code(),
            StatusCode::kOutOfRange);
}

}  // namespace
}  // namespace converge::sim
