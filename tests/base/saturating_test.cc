#include "base/saturating.h"

#include <cmath>

#include <gtest/gtest.h>

namespace converge {
namespace {

TEST(SaturatingTest, AddAndMulClampAtTheTop) {
  EXPECT_EQ(SaturatingAdd(1, 2), 3u);
  EXPECT_EQ(SaturatingAdd(kU64Max - 1, 1), kU64Max);
  EXPECT_EQ(SaturatingAdd(kU64Max, kU64Max), kU64Max);
  EXPECT_EQ(SaturatingMul(1u << 20, 4096), uint64_t{1} << 32);
  EXPECT_EQ(SaturatingMul(uint64_t{1} << 32, uint64_t{1} << 32), kU64Max);
  EXPECT_EQ(SaturatingMul(0, kU64Max), 0u);
}

TEST(SaturatingTest, ClampToU64CoversEveryDouble) {
  EXPECT_EQ(ClampToU64(0.0), 0u);
  EXPECT_EQ(ClampToU64(-5.0), 0u);
  EXPECT_EQ(ClampToU64(std::nan("")), 0u);
  EXPECT_EQ(ClampToU64(12.9), 12u);
  EXPECT_EQ(ClampToU64(18446744073709551616.0), kU64Max);
  EXPECT_EQ(ClampToU64(1e300), kU64Max);
  EXPECT_EQ(ClampToU64(INFINITY), kU64Max);
  EXPECT_EQ(ClampToU64(9007199254740992.0), uint64_t{1} << 53);
}

}  // namespace
}  // namespace converge
