#include "bitmap/dirty_bitmap.h"

#include <gtest/gtest.h>

namespace converge {
namespace {

TEST(DirtyBitmapTest, RunsAcrossWords) {
  DirtyBitmap b(200);
  b.SetRange(60, 10);
  b.Set(130);
  b.SetRange(190, 10);
  EXPECT_EQ(b.Count(), 21u);
  std::vector<PageRun> want = {{60, 10}, {130, 1}, {190, 10}};
  EXPECT_EQ(b.Runs(), want);
}

}  // namespace
}  // namespace converge
