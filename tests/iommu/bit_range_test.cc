#include "iommu/bit_range.h"

#include <bit>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace converge {
namespace {

bool Bit(const std::vector<uint64_t>& w, uint64_t i) {
  return (w[i / 64] >> (i % 64)) & 1;
}

// Random words of the given density: 0 = clean, 1 = sparse, 2 = dense.
std::vector<uint64_t> RandomWords(std::mt19937_64& rng, size_t n,
                                  int density) {
  std::vector<uint64_t> w(n);
  for (uint64_t& v : w) {
    if (density == 1) {
      v = rng() % 16 == 0 ? uint64_t{1} << (rng() % 64) : 0;
    } else if (density == 2) {
      v = rng() % 4 == 0 ? ~uint64_t{0} : rng();
    }
  }
  return w;
}

TEST(BitRangeTest, OrBitRangeMatchesBitByBitAtAnyOffset) {
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (int round = 0; round < 400; ++round) {
    const int density = round % 3;
    std::vector<uint64_t> src = RandomWords(rng, 40, density);
    std::vector<uint64_t> dst = RandomWords(rng, 40, 1);
    // Every fourth round word-aligned on both sides (the scanned path).
    const bool aligned = round % 4 == 0;
    const uint64_t src_bit = aligned ? 64 * (rng() % 8) : rng() % 600;
    const uint64_t dst_bit = aligned ? 64 * (rng() % 8) : rng() % 600;
    const uint64_t num_bits = rng() % (40 * 64 - std::max(src_bit, dst_bit));
    std::vector<uint64_t> want = dst;
    uint64_t want_copied = 0;
    for (uint64_t i = 0; i < num_bits; ++i) {
      if (Bit(src, src_bit + i)) {
        want[(dst_bit + i) / 64] |= uint64_t{1} << ((dst_bit + i) % 64);
        ++want_copied;
      }
    }
    const uint64_t copied =
        OrBitRange(src.data(), src_bit, dst.data(), dst_bit, num_bits);
    ASSERT_EQ(copied, want_copied) << "round " << round;
    ASSERT_EQ(dst, want) << "round " << round << " src_bit " << src_bit
                         << " dst_bit " << dst_bit << " bits " << num_bits;
    uint64_t want_count = 0;
    for (uint64_t i = 0; i < num_bits; ++i) want_count += Bit(src, src_bit + i);
    ASSERT_EQ(CountBitRange(src.data(), src_bit, num_bits), want_count);
  }
}

TEST(BitRangeTest, OrBitRangeEdgeCases) {
  struct Case {
    const char* what;
    uint64_t src_bit, dst_bit, num_bits;
  };
  const Case cases[] = {
      {"nothing", 0, 0, 0},
      {"one bit", 5, 70, 1},
      {"aligned, tail only", 64, 128, 17},
      {"aligned, whole words", 0, 64, 192},
      {"aligned, words and tail", 64, 0, 130},
      {"unaligned to aligned", 3, 64, 200},
      {"aligned to unaligned", 64, 61, 200},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    std::vector<uint64_t> src(6, ~uint64_t{0}), dst(6, 0);
    EXPECT_EQ(OrBitRange(src.data(), c.src_bit, dst.data(), c.dst_bit,
                         c.num_bits),
              c.num_bits);
    for (uint64_t i = 0; i < 6 * 64; ++i) {
      const bool in = i >= c.dst_bit && i < c.dst_bit + c.num_bits;
      ASSERT_EQ(Bit(dst, i), in) << "bit " << i;
    }
  }
}

TEST(BitRangeTest, ListSetWordsListsExactlyTheSetWordsAndCountsThem) {
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (int round = 0; round < 100; ++round) {
    // Lengths around the vector widths, runs of set words, clean stretches.
    const size_t n = rng() % 300;
    std::vector<uint64_t> w = RandomWords(rng, n, round % 3);
    std::vector<uint64_t> want_list{7};  // ListSetWords appends
    uint64_t want_count = 0;
    for (size_t i = 0; i < n; ++i) {
      if (w[i] != 0) want_list.push_back(i);
      want_count += static_cast<uint64_t>(std::popcount(w[i]));
    }
    std::vector<uint64_t> list{7};
    EXPECT_EQ(ListSetWords(w.data(), n, list), want_count) << "round " << round;
    ASSERT_EQ(list, want_list) << "round " << round;
  }
  std::vector<uint64_t> none;
  EXPECT_EQ(ListSetWords(nullptr, 0, none), 0u);
  EXPECT_TRUE(none.empty());
}

TEST(BitRangeTest, MoveSetWordsOrsAndClearsTheSource) {
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (int round = 0; round < 100; ++round) {
    const size_t n = rng() % 300;
    std::vector<uint64_t> src = RandomWords(rng, n, round % 3);
    std::vector<uint64_t> dst = RandomWords(rng, n, 1);
    std::vector<uint64_t> want = dst;
    uint64_t want_moved = 0;
    for (size_t i = 0; i < n; ++i) {
      want[i] |= src[i];
      want_moved += static_cast<uint64_t>(std::popcount(src[i]));
    }
    EXPECT_EQ(MoveSetWords(src.data(), dst.data(), n), want_moved)
        << "round " << round;
    ASSERT_EQ(dst, want) << "round " << round;
    ASSERT_EQ(src, std::vector<uint64_t>(n, 0)) << "round " << round;
  }
}

}  // namespace
}  // namespace converge
