#include "sim/link_model.h"

#include <gtest/gtest.h>

#include "sim/virtual_clock.h"

namespace converge::sim {
namespace {

TEST(LinkModelTest, TransferTimeIsBytesOverBandwidthPlusLatency) {
  LinkModel link({/*bandwidth_bps=*/1e9, /*latency_ms=*/1});
  EXPECT_EQ(link.TransferNs(0), 1000000u);
  EXPECT_EQ(link.TransferNs(1000000000), 1001000000u);
}

TEST(ContentModelTest, ClassesFollowFractions) {
  ContentModel m({/*zero_fraction=*/0.25, /*text_fraction=*/0.5});
  uint64_t counts[3] = {};
  const uint64_t n = 200000;
  for (uint64_t p = 0; p < n; ++p) ++counts[static_cast<int>(m.ClassOf(p))];
  EXPECT_NEAR(static_cast<double>(counts[0]) / n, 0.25, 0.01);
  EXPECT_NEAR(static_cast<double>(counts[1]) / n, 0.50, 0.01);
  EXPECT_NEAR(static_cast<double>(counts[2]) / n, 0.25, 0.01);
  // Deterministic: a page keeps its class.
  EXPECT_EQ(m.ClassOf(12345), m.ClassOf(12345));
}

TEST(ContentModelTest, WireBytesUseCalibration) {
  ContentModel m(ContentOptions{});
  const uint64_t f = ContentModel::kFramingBytes;
  EXPECT_EQ(m.WireBytes(PageClass::kZero), f);
  EXPECT_EQ(m.WireBytes(PageClass::kText), 4096 + f);
  m.set_compressed_bytes(PageClass::kText, 1500);
  EXPECT_EQ(m.WireBytes(PageClass::kText), 1500 + f);
  EXPECT_EQ(m.WireBytes(PageClass::kRandom), 4096 + f);
}

TEST(VirtualClockTest, MovesOnlyWhenAdvanced) {
  VirtualClock c(5);
  EXPECT_EQ(c.NowNs(), 5u);
  c.SleepNs(10);
  c.AdvanceNs(1);
  EXPECT_EQ(c.NowNs(), 16u);
}

}  // namespace
}  // namespace converge::sim
