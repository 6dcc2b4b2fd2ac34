#include "bitmap/word_ops.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <random>
#include <string>
#include <vector>

namespace converge::word_ops {
namespace {

// Every length 0..70 (vector bodies, partial tails) plus a few long ones,
// for every kernel variant this CPU can run.
std::vector<uint64_t> Lengths() {
  std::vector<uint64_t> lengths;
  for (uint64_t n = 0; n <= 70; ++n) lengths.push_back(n);
  for (uint64_t n : {127, 128, 129, 1000, 4099}) lengths.push_back(n);
  return lengths;
}

std::vector<uint64_t> RandomWords(std::mt19937_64& rng, uint64_t n) {
  std::vector<uint64_t> w(n);
  for (uint64_t& x : w) {
    switch (rng() % 4) {
      case 0: x = 0; break;
      case 1: x = ~uint64_t{0}; break;
      default: x = rng(); break;
    }
  }
  return w;
}

TEST(WordOpsTest, SupportedStartsWithGenericAndIncludesActive) {
  std::vector<const Kernels*> all = Supported();
  ASSERT_FALSE(all.empty());
  EXPECT_STREQ(all.front()->name, "generic");
  bool found = false;
  for (const Kernels* k : all) found = found || k == &Active();
  EXPECT_TRUE(found) << Active().name;
}

TEST(WordOpsTest, EveryVariantMatchesScalar) {
  for (const Kernels* k : Supported()) {
    SCOPED_TRACE(k->name);
    std::mt19937_64 rng(42);
    for (uint64_t n : Lengths()) {
      SCOPED_TRACE(n);
      std::vector<uint64_t> a = RandomWords(rng, n), b = RandomWords(rng, n);

      std::vector<uint64_t> ored = a;
      k->or_words(ored.data(), b.data(), n);
      uint64_t pop = 0;
      for (uint64_t i = 0; i < n; ++i) {
        ASSERT_EQ(ored[i], a[i] | b[i]);
        pop += static_cast<uint64_t>(std::popcount(a[i]));
      }
      EXPECT_EQ(k->popcount_words(a.data(), n), pop);

      if (n >= 1) {
        // edge_words over a[1..] (a[0] is the readable predecessor).
        const uint64_t count = std::min<uint64_t>(64, n - 1);
        uint64_t want = 0;
        for (uint64_t j = 0; j < count; ++j) {
          uint64_t fill = (a[j] >> 63) ? ~uint64_t{0} : 0;
          if (a[j + 1] != fill) want |= uint64_t{1} << j;
        }
        EXPECT_EQ(k->edge_words(a.data() + 1, count), want);
      }

      for (unsigned shift : {1u, 7u, 32u, 63u}) {
        std::vector<uint64_t> dst = a;
        k->or_shifted_words(dst.data(), b.data(), n, shift);
        for (uint64_t i = 0; i < n; ++i) {
          uint64_t want = a[i];
          if (i >= 1) want |= (b[i] << shift) | (b[i - 1] >> (64 - shift));
          ASSERT_EQ(dst[i], want) << "shift " << shift << " word " << i;
        }
      }
    }
  }
}

// find_word_not at every start and every position of the first mismatch.
TEST(WordOpsTest, FindWordNotEveryPosition) {
  for (const Kernels* k : Supported()) {
    SCOPED_TRACE(k->name);
    for (uint64_t value : {uint64_t{0}, ~uint64_t{0}}) {
      for (uint64_t n : {0, 1, 7, 8, 9, 16, 17, 40, 100}) {
        std::vector<uint64_t> w(n, value);
        for (uint64_t from = 0; from <= n; ++from) {
          ASSERT_EQ(k->find_word_not(w.data(), from, n, value), n);
        }
        for (uint64_t pos = 0; pos < n; ++pos) {
          w[pos] = value ^ (uint64_t{1} << (pos % 64));
          for (uint64_t from = 0; from <= n; ++from) {
            uint64_t want = from <= pos ? pos : n;
            ASSERT_EQ(k->find_word_not(w.data(), from, n, value), want)
                << "n " << n << " pos " << pos << " from " << from;
          }
          w[pos] = value;
        }
      }
    }
  }
}

TEST(WordOpsTest, ParallelFormsMatchSerial) {
  std::mt19937_64 rng(3);
  for (uint64_t n : {uint64_t{0}, uint64_t{1}, uint64_t{100000},
                     uint64_t{3} << 16 | 13}) {
    std::vector<uint64_t> a = RandomWords(rng, n), b = RandomWords(rng, n);
    std::vector<uint64_t> serial = a, parallel = a;
    Active().or_words(serial.data(), b.data(), n);
    OrWordsParallel(parallel.data(), b.data(), n);
    EXPECT_EQ(parallel, serial);
    EXPECT_EQ(PopcountWordsParallel(a.data(), n),
              Active().popcount_words(a.data(), n));
  }
}

TEST(WordOpsTest, ForEachRunInWordsOffsetsAndEnds) {
  const uint64_t words[] = {~uint64_t{0}, 0, 0x8000000000000001ULL,
                            ~uint64_t{0}};
  std::vector<PageRun> got;
  ForEachRunInWords(words, 1000, [&](PageRun r) { got.push_back(r); });
  std::vector<PageRun> want = {{1000, 64}, {1128, 1}, {1191, 65}};
  EXPECT_EQ(got, want);
}

}  // namespace
}  // namespace converge::word_ops
