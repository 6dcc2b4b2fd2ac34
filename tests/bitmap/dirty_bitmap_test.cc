#include "bitmap/dirty_bitmap.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

namespace converge {
namespace {

constexpr uint64_t kSizes[] = {0, 1, 63, 64, 65, 4095, 4096, 4097};

// The bits of the last word past num_pages() must read as zero.
void ExpectTailClear(const DirtyBitmap& b) {
  if (b.num_pages() % 64 == 0) return;
  uint64_t tail = b.words().back() >> (b.num_pages() % 64);
  EXPECT_EQ(tail, 0u) << "bits past num_pages() " << b.num_pages();
}

TEST(DirtyBitmapTest, RunsAcrossWords) {
  DirtyBitmap b(200);
  b.SetRange(60, 10);
  b.Set(130);
  b.SetRange(190, 10);
  EXPECT_EQ(b.Count(), 21u);
  std::vector<PageRun> want = {{60, 10}, {130, 1}, {190, 10}};
  EXPECT_EQ(b.Runs(), want);
}

TEST(DirtyBitmapTest, NewBitmapIsClean) {
  for (uint64_t n : kSizes) {
    SCOPED_TRACE(n);
    DirtyBitmap b(n);
    EXPECT_EQ(b.num_pages(), n);
    EXPECT_EQ(b.num_words(), (n + 63) / 64);
    EXPECT_EQ(b.Count(), 0u);
    EXPECT_FALSE(b.Any());
    EXPECT_EQ(b.FindNextDirty(0), n);
    EXPECT_TRUE(b.Runs().empty());
    EXPECT_EQ(b.CountRange(0, n), 0u);
  }
}

TEST(DirtyBitmapTest, AllDirtyIsOneRunToTheEnd) {
  for (uint64_t n : kSizes) {
    SCOPED_TRACE(n);
    DirtyBitmap b(n);
    b.SetRange(0, n);
    ExpectTailClear(b);
    EXPECT_EQ(b.Count(), n);
    EXPECT_EQ(b.CountRange(0, n), n);
    if (n == 0) {
      EXPECT_TRUE(b.Runs().empty());
      continue;
    }
    EXPECT_TRUE(b.Any());
    EXPECT_EQ(b.Runs(), (std::vector<PageRun>{{0, n}}));
    b.ClearAll();
    EXPECT_EQ(b.Count(), 0u);
  }
}

TEST(DirtyBitmapTest, RunEndingAtTheLastPage) {
  for (uint64_t n : kSizes) {
    if (n < 2) continue;
    SCOPED_TRACE(n);
    DirtyBitmap b(n);
    b.Set(n - 1);
    EXPECT_EQ(b.Runs(), (std::vector<PageRun>{{n - 1, 1}}));
    EXPECT_EQ(b.FindNextDirty(0), n - 1);
    EXPECT_EQ(b.FindNextDirty(n - 1), n - 1);
    b.SetRange(n / 2, n - n / 2);
    EXPECT_EQ(b.Runs(), (std::vector<PageRun>{{n / 2, n - n / 2}}));
    b.ClearRange(n - 1, 1);
    EXPECT_EQ(b.Runs(), (std::vector<PageRun>{{n / 2, n - n / 2 - 1}}));
    ExpectTailClear(b);
  }
}

// Alternating runs of every length 1..70 cover word edges at all offsets.
TEST(DirtyBitmapTest, RunsOfEveryLengthAndOffset) {
  DirtyBitmap b(5000);
  std::vector<PageRun> want;
  uint64_t page = 1;
  for (uint64_t len = 1; page + len < 5000; len = len % 70 + 1) {
    b.SetRange(page, len);
    want.push_back({page, len});
    page += len + (len % 3) + 1;
  }
  EXPECT_EQ(b.Runs(), want);
  uint64_t total = 0;
  for (const PageRun& r : want) total += r.count;
  EXPECT_EQ(b.Count(), total);
}

struct RangeCase {
  uint64_t first, count;
};

TEST(DirtyBitmapTest, RangesCrossingWords) {
  const RangeCase cases[] = {{0, 0},   {0, 1},    {63, 1},  {63, 2},
                             {64, 64}, {1, 126},  {60, 10}, {0, 200},
                             {127, 2}, {130, 70}, {199, 1}, {65, 63}};
  for (const RangeCase& c : cases) {
    SCOPED_TRACE(testing::Message() << c.first << "+" << c.count);
    DirtyBitmap b(200);
    b.SetRange(c.first, c.count);
    EXPECT_EQ(b.Count(), c.count);
    for (uint64_t p = 0; p < 200; ++p) {
      ASSERT_EQ(b.Test(p), p >= c.first && p < c.first + c.count) << p;
    }
    // CountRange over windows that start and end inside the range.
    EXPECT_EQ(b.CountRange(c.first, c.count), c.count);
    if (c.count >= 2) {
      EXPECT_EQ(b.CountRange(c.first + 1, c.count - 1), c.count - 1);
    }
    EXPECT_EQ(b.CountRange(0, 200), c.count);
    if (c.count > 0) {
      EXPECT_EQ(b.Runs(), (std::vector<PageRun>{{c.first, c.count}}));
      EXPECT_EQ(b.FindNextDirty(0), c.first);
    }
    DirtyBitmap all(200);
    all.SetRange(0, 200);
    all.ClearRange(c.first, c.count);
    EXPECT_EQ(all.Count(), 200 - c.count);
    ExpectTailClear(all);
  }
}

TEST(DirtyBitmapTest, ForEachRunInRangeClips) {
  DirtyBitmap b(300);
  b.SetRange(10, 100);  // crosses words 0..1
  b.SetRange(150, 10);
  b.SetRange(290, 10);  // reaches the end
  struct Case {
    uint64_t first, count;
    std::vector<PageRun> want;
  };
  const Case cases[] = {
      {0, 300, {{10, 100}, {150, 10}, {290, 10}}},
      {50, 105, {{50, 60}, {150, 5}}},
      {110, 40, {}},
      {155, 140, {{155, 5}, {290, 5}}},
      {299, 1, {{299, 1}}},
      {0, 0, {}},
      {12, 3, {{12, 3}}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(testing::Message() << c.first << "+" << c.count);
    std::vector<PageRun> got;
    b.ForEachRunInRange(c.first, c.count, [&](PageRun r) { got.push_back(r); });
    EXPECT_EQ(got, c.want);
  }
}

TEST(DirtyBitmapTest, MergeFromAndSubtract) {
  DirtyBitmap a(130), b(130);
  a.SetRange(0, 70);
  b.SetRange(60, 70);
  DirtyBitmap u = a;
  u.MergeFrom(b);
  EXPECT_EQ(u.Runs(), (std::vector<PageRun>{{0, 130}}));
  a.Subtract(b);
  EXPECT_EQ(a.Runs(), (std::vector<PageRun>{{0, 60}}));
}

TEST(DirtyBitmapTest, MergeWordsAligned) {
  DirtyBitmap b(256);
  const uint64_t words[] = {0x1, 0x8000000000000000ULL};
  ASSERT_TRUE(b.MergeWords(words, 64).ok());
  EXPECT_EQ(b.Runs(), (std::vector<PageRun>{{64, 1}, {191, 1}}));
}

// Unaligned merges that end exactly at the last page, past it with a set
// bit (error, nothing merged) and past it with only zero padding (fine).
TEST(DirtyBitmapTest, MergeWordsAtTheVeryEnd) {
  for (uint64_t n : kSizes) {
    for (uint64_t back : {1, 2, 63, 64, 65, 130}) {
      if (back > n) continue;
      const uint64_t first = n - back;  // any alignment
      SCOPED_TRACE(testing::Message() << "n=" << n << " first=" << first);
      // All `back` pages set, padded to whole words with zeros, plus one
      // more all-zero word.
      std::vector<uint64_t> words((back + 63) / 64 + 1, 0);
      for (uint64_t i = 0; i < back; ++i) words[i / 64] |= uint64_t{1} << (i % 64);
      DirtyBitmap b(n);
      b.Set(0);
      ASSERT_TRUE(b.MergeWords(words, first).ok());
      EXPECT_EQ(b.Count(), back + (first > 0 ? 1 : 0));
      EXPECT_EQ(b.CountRange(first, back), back);
      ExpectTailClear(b);

      // One bit past the end: an error naming the page, nothing merged.
      words[back / 64] |= uint64_t{1} << (back % 64);
      DirtyBitmap c(n);
      c.Set(0);
      Status s = c.MergeWords(words, first);
      EXPECT_EQ(s.code(), StatusCode::kOutOfRange);
      EXPECT_NE(s.message().find("page " + std::to_string(n)), std::string::npos)
          << s.ToString();
      EXPECT_EQ(c.Count(), 1u);

      // Restricting num_bits to the valid ones ignores the stray bit.
      ASSERT_TRUE(c.MergeWords(words, first, back).ok());
      EXPECT_EQ(c, b);
    }
  }
}

TEST(DirtyBitmapTest, MergeWordsPastTheEnd) {
  DirtyBitmap b(100);
  const uint64_t zeros[] = {0, 0, 0};
  EXPECT_TRUE(b.MergeWords(zeros, 100).ok());  // only padding
  EXPECT_TRUE(b.MergeWords(zeros, 1000).ok());
  const uint64_t one[] = {0, 0x10};
  Status s = b.MergeWords(one, 1000);
  EXPECT_EQ(s.code(), StatusCode::kOutOfRange);
  EXPECT_NE(s.message().find("page 1068"), std::string::npos) << s.ToString();
  EXPECT_TRUE(b.MergeWords({}, 0).ok());
  EXPECT_EQ(b.Count(), 0u);
}

// Every shift and length against a per-bit reference.
TEST(DirtyBitmapTest, MergeWordsEveryShift) {
  std::mt19937_64 rng(7);
  for (uint64_t len_words = 1; len_words <= 12; ++len_words) {
    std::vector<uint64_t> words(len_words);
    for (uint64_t& w : words) w = rng() & rng();
    for (uint64_t first = 0; first < 130; ++first) {
      SCOPED_TRACE(testing::Message() << len_words << " words at " << first);
      DirtyBitmap b(first + 64 * len_words + 3);
      b.Set(first + 64 * len_words + 2);
      ASSERT_TRUE(b.MergeWords(words, first).ok());
      for (uint64_t i = 0; i < 64 * len_words; ++i) {
        ASSERT_EQ(b.Test(first + i), ((words[i / 64] >> (i % 64)) & 1) != 0) << i;
      }
      ASSERT_EQ(b.CountRange(0, first), 0u);
      ASSERT_TRUE(b.Test(first + 64 * len_words + 2));
    }
  }
}

// Sizes above the TBB thresholds: parallel merge and count agree with the
// single-threaded kernels.
TEST(DirtyBitmapTest, LargeBitmapsCrossTheParallelThreshold) {
  const uint64_t min_words = std::max(word_ops::kParallelOrMinWords,
                                      word_ops::kParallelPopcountMinWords);
  const uint64_t n = 64 * min_words + 77;
  std::mt19937_64 rng(11);
  DirtyBitmap a(n), b(n);
  for (int i = 0; i < 100000; ++i) a.Set(rng() % n);
  for (int i = 0; i < 1000; ++i) b.SetRange(rng() % (n - 5000), rng() % 5000);
  std::vector<uint64_t> expect(a.words().begin(), a.words().end());
  word_ops::Active().or_words(expect.data(), b.words().data(), expect.size());
  uint64_t expect_count =
      word_ops::Active().popcount_words(expect.data(), expect.size());
  a.MergeFrom(b);
  EXPECT_TRUE(std::equal(expect.begin(), expect.end(), a.words().begin()));
  EXPECT_EQ(a.Count(), expect_count);
  EXPECT_EQ(a.CountRange(1, n - 2), expect_count - (a.Test(0) ? 1 : 0) -
                                        (a.Test(n - 1) ? 1 : 0));
  ExpectTailClear(a);
}

}  // namespace
}  // namespace converge
