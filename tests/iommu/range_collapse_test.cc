#include "iommu/range_collapse.h"

#include <random>

#include "gtest/gtest.h"

namespace converge {
namespace {

TEST(CollapseRangesTest, Table) {
  struct Case {
    std::vector<IovaSpan> in;
    size_t max;
    std::vector<IovaSpan> want;
  } cases[] = {
      {{}, 4, {}},
      {{{0, 10}, {10, 10}}, 4, {{0, 20}}},  // touching merge
      {{{20, 5}, {0, 10}}, 4, {{0, 10}, {20, 5}}},
      // QEMU's shape: low RAM, a hole, high RAM: two ranges survive.
      {{{0, 100}, {110, 100}, {1000, 100}}, 2, {{0, 210}, {1000, 100}}},
      {{{0, 1}, {5, 1}, {7, 1}}, 1, {{0, 8}}},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(CollapseRanges(c.in, c.max), c.want);
  }
}

TEST(CollapseRangesTest, CoversEveryInputAndRespectsLimit) {
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  std::vector<IovaSpan> in;
  uint64_t at = 0;
  for (int i = 0; i < 1000; ++i) {
    at += (rng() % 64 + 1) * 4096;
    const uint64_t len = (rng() % 16 + 1) * 4096;
    in.push_back({at, len});
    at += len;
  }
  auto out = CollapseRanges(in, 256);
  ASSERT_LE(out.size(), 256u);
  for (size_t i = 1; i < out.size(); ++i) ASSERT_LT(out[i - 1].end(), out[i].iova);
  for (const IovaSpan& s : in) {
    bool covered = false;
    for (const IovaSpan& o : out) covered |= o.iova <= s.iova && s.end() <= o.end();
    ASSERT_TRUE(covered) << s.iova;
  }
}

}  // namespace
}  // namespace converge
