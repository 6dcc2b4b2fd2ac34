#include "bitmap/rescale.h"

#include <gtest/gtest.h>

#include <vector>

namespace converge {
namespace {

constexpr uint64_t k4K = 4096;
constexpr uint64_t k2M = 2 << 20;

TEST(RescaleTest, CoarseBitDirtiesAllItsFinePages) {
  DirtyBitmap iommu(8);  // 16 MiB at 2 MiB
  iommu.Set(1);
  iommu.SetRange(5, 2);
  DirtyBitmap ram(8 * 512);
  ASSERT_TRUE(RescaleInto(iommu, k2M, ram, k4K).ok());
  EXPECT_EQ(ram.Runs(), (std::vector<PageRun>{{512, 512}, {2560, 1024}}));
}

TEST(RescaleTest, FinePagesOrIntoTheirCoarsePage) {
  DirtyBitmap ram(8 * 512);
  ram.Set(0);
  ram.Set(511);  // same coarse page
  ram.SetRange(1023, 2);  // straddles coarse pages 1 and 2
  ram.Set(4095);
  DirtyBitmap coarse(8);
  ASSERT_TRUE(RescaleInto(ram, k4K, coarse, k2M).ok());
  EXPECT_EQ(coarse.Runs(), (std::vector<PageRun>{{0, 3}, {7, 1}}));
}

TEST(RescaleTest, RoundTripCoversTheOriginal) {
  DirtyBitmap ram(3 * 512 + 100);
  ram.Set(700);
  ram.Set(3 * 512 + 99);
  DirtyBitmap coarse(4);
  ASSERT_TRUE(RescaleInto(ram, k4K, coarse, k2M).ok());
  EXPECT_EQ(coarse.Runs(), (std::vector<PageRun>{{1, 1}, {3, 1}}));
  DirtyBitmap back(ram.num_pages());
  ASSERT_TRUE(RescaleInto(coarse, k2M, back, k4K).ok());
  // The last coarse page straddles the end: only its pages inside count.
  EXPECT_EQ(back.Runs(), (std::vector<PageRun>{{512, 512}, {1536, 100}}));
}

TEST(RescaleTest, EqualPageSizesMerge) {
  DirtyBitmap a(100), b(100);
  a.SetRange(3, 90);
  b.Set(99);
  ASSERT_TRUE(RescaleInto(a, k4K, b, k4K).ok());
  EXPECT_EQ(b.Runs(), (std::vector<PageRun>{{3, 90}, {99, 1}}));
}

// A coarse kernel bitmap placed at an offset inside the RAM bitmap.
TEST(RescaleTest, WordsAtAnOffset) {
  const uint64_t kernel[] = {0b1001};
  DirtyBitmap ram(4096);
  ASSERT_TRUE(RescaleWordsInto(kernel, k2M, 3 * k2M / 2, ram, k4K).ok());
  EXPECT_EQ(ram.Runs(), (std::vector<PageRun>{{768, 512}, {2304, 512}}));

  // Fine kernel bits into coarse pages, at an offset of 5 fine pages: bit
  // 58 is fine page 63 (coarse page 0), bit 59 fine page 64 (coarse 1).
  const uint64_t fine[] = {uint64_t{0b11} << 58, 0};
  DirtyBitmap coarse(2);
  ASSERT_TRUE(RescaleWordsInto(fine, k4K, 5 * k4K, coarse, 64 * k4K).ok());
  EXPECT_EQ(coarse.Runs(), (std::vector<PageRun>{{0, 2}}));
}

TEST(RescaleTest, ManyRatiosAgainstPerPageReference) {
  for (uint64_t src_shift : {0, 1, 6, 9}) {
    for (uint64_t dst_shift : {0, 2, 7, 9}) {
      const uint64_t src_bytes = k4K << src_shift, dst_bytes = k4K << dst_shift;
      SCOPED_TRACE(testing::Message() << src_bytes << " -> " << dst_bytes);
      const uint64_t total_bytes = 1000 * k4K * 64;
      DirtyBitmap src(total_bytes / src_bytes);
      for (uint64_t p = 0; p < src.num_pages(); p += 1 + p % 97) src.Set(p);
      DirtyBitmap dst(total_bytes / dst_bytes);
      ASSERT_TRUE(RescaleInto(src, src_bytes, dst, dst_bytes).ok());
      DirtyBitmap want(dst.num_pages());
      for (uint64_t p = 0; p < src.num_pages(); ++p) {
        if (!src.Test(p)) continue;
        uint64_t lo = p * src_bytes / dst_bytes;
        uint64_t hi = ((p + 1) * src_bytes + dst_bytes - 1) / dst_bytes;
        want.SetRange(lo, hi - lo);
      }
      EXPECT_EQ(dst, want);
    }
  }
}

struct BadCase {
  const char* name;
  uint64_t src_page_bytes, offset_bytes, dst_page_bytes;
  StatusCode code;
};

TEST(RescaleTest, BadInputIsAClearError) {
  const BadCase cases[] = {
      {"src_page_bytes", 3000, 0, k4K, StatusCode::kInvalidArgument},
      {"dst_page_bytes", k4K, 0, 0, StatusCode::kInvalidArgument},
      {"offset_bytes", k2M, 100, k4K, StatusCode::kInvalidArgument},
      {"past the end", k2M, 2 * k2M, k4K, StatusCode::kOutOfRange},
      {"past the end", k4K, 1024 * k4K, k4K, StatusCode::kOutOfRange},
  };
  for (const BadCase& c : cases) {
    SCOPED_TRACE(c.name);
    const uint64_t kernel[] = {0b11};
    DirtyBitmap ram(1024 + 1);  // the second bit starts past the end
    Status s = RescaleWordsInto(kernel, c.src_page_bytes, c.offset_bytes, ram,
                                c.dst_page_bytes);
    EXPECT_EQ(s.code(), c.code) << s.ToString();
    EXPECT_NE(s.message().find(c.name), std::string::npos) << s.ToString();
    EXPECT_EQ(ram.Count(), 0u);  // nothing merged
  }
}

TEST(RescaleTest, ZeroBitsAnywhereAreFine) {
  const uint64_t zeros[] = {0, 0};
  DirtyBitmap ram(10);
  EXPECT_TRUE(RescaleWordsInto(zeros, k2M, 1000 * k2M, ram, k4K).ok());
  EXPECT_TRUE(RescaleWordsInto({}, k2M, 0, ram, k4K).ok());
  EXPECT_EQ(ram.Count(), 0u);
}

}  // namespace
}  // namespace converge
