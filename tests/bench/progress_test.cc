#include "bench/cli/progress.h"

#include <cstdio>

#include <gtest/gtest.h>

namespace converge::bench {
namespace {

std::string Capture(bool redraw) {
  char* buf = nullptr;
  size_t len = 0;
  FILE* f = open_memstream(&buf, &len);
  {
    ProgressLine line(f, redraw);
    line.Update("iter 1");
    line.Update("iter 2");
  }
  fclose(f);
  std::string s(buf, len);
  free(buf);
  return s;
}

TEST(ProgressLineTest, PlainLinesWhenNotATerminal) {
  EXPECT_EQ(Capture(false), "iter 1\niter 2\n");
}

TEST(ProgressLineTest, RedrawsInPlaceOnATerminal) {
  EXPECT_EQ(Capture(true), "\riter 1\x1b[K\riter 2\x1b[K\n");
}

TEST(ProgressLineTest, FormatsQuantities) {
  EXPECT_EQ(FormatBytes(512), "512 B");
  EXPECT_EQ(FormatBytes(1536), "1.50 KiB");
  EXPECT_EQ(FormatBytes(3.0 * (1ull << 30)), "3.00 GiB");
  EXPECT_EQ(FormatRate(100.0 * (1 << 20)), "100.00 MiB/s");
  EXPECT_EQ(FormatMs(3.14159), "3.14 ms");
  EXPECT_EQ(FormatMs(250), "250 ms");
  EXPECT_EQ(FormatMs(12500), "12.5 s");
}

}  // namespace
}  // namespace converge::bench
