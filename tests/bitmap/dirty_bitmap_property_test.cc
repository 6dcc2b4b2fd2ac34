// Random operation sequences on DirtyBitmap against a per-bit model.
// A failure prints its seed; CONVERGE_BITMAP_SEED=<seed> replays just it.

#include <gtest/gtest.h>

#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "bitmap/dirty_bitmap.h"
#include "bitmap/rescale.h"

namespace converge {
namespace {

using Model = std::vector<bool>;

std::vector<PageRun> ModelRuns(const Model& m, uint64_t first, uint64_t end) {
  std::vector<PageRun> runs;
  for (uint64_t p = first; p < end; ++p) {
    if (!m[p]) continue;
    if (!runs.empty() && runs.back().first + runs.back().count == p) {
      ++runs.back().count;
    } else {
      runs.push_back({p, 1});
    }
  }
  return runs;
}

uint64_t ModelCount(const Model& m, uint64_t first, uint64_t end) {
  uint64_t c = 0;
  for (uint64_t p = first; p < end; ++p) c += m[p];
  return c;
}

class Sequence {
 public:
  explicit Sequence(uint64_t seed) : rng_(seed) {
    static constexpr uint64_t kEdgeSizes[] = {0,    1,    63,   64,  65,
                                              4095, 4096, 4097, 128, 129};
    n_ = rng_() % 3 == 0 ? kEdgeSizes[rng_() % 10] : rng_() % 700;
    bitmap_ = DirtyBitmap(n_);
    model_.assign(n_, false);
  }

  // Runs `ops` random operations, checking the whole state after each.
  void Run(int ops) {
    for (int i = 0; i < ops; ++i) {
      Step();
      if (testing::Test::HasFatalFailure()) return;
      Check();
      if (testing::Test::HasFatalFailure()) return;
    }
  }

 private:
  // A random range [first, first + count) inside the bitmap, often at
  // word edges.
  void RandomRange(uint64_t* first, uint64_t* count) {
    *first = Pick();
    *count = Pick() % (n_ - *first + 1);
    if (rng_() % 4 == 0) *count = n_ - *first;
  }
  uint64_t Pick() {
    if (n_ == 0) return 0;
    uint64_t p = rng_() % (n_ + 1);
    if (rng_() % 3 == 0) p = std::min(n_, (p / 64) * 64 + (rng_() % 3 == 0 ? 63 : 0));
    return p;
  }

  void Step() {
    uint64_t first = 0, count = 0;
    RandomRange(&first, &count);
    switch (rng_() % 10) {
      case 0:
        if (n_ > 0) {
          uint64_t p = rng_() % n_;
          bitmap_.Set(p);
          model_[p] = true;
        }
        break;
      case 1:
        bitmap_.SetRange(first, count);
        for (uint64_t p = first; p < first + count; ++p) model_[p] = true;
        break;
      case 2:
        bitmap_.ClearRange(first, count);
        for (uint64_t p = first; p < first + count; ++p) model_[p] = false;
        break;
      case 3:
      case 4: {
        DirtyBitmap other(n_);
        for (int k = 0; k < 4; ++k) {
          RandomRange(&first, &count);
          other.SetRange(first, count);
        }
        if (rng_() % 4 == 0) {
          bitmap_.Subtract(other);
          for (uint64_t p = 0; p < n_; ++p) model_[p] = model_[p] && !other.Test(p);
        } else {
          bitmap_.MergeFrom(other);
          for (uint64_t p = 0; p < n_; ++p) model_[p] = model_[p] || other.Test(p);
        }
        break;
      }
      case 5:
      case 6: MergeWords(); break;
      case 7: Rescale(); break;
      case 8: {
        ASSERT_EQ(bitmap_.CountRange(first, count),
                  ModelCount(model_, first, first + count));
        std::vector<PageRun> after = ModelRuns(model_, first, n_);
        ASSERT_EQ(bitmap_.FindNextDirty(first),
                  after.empty() ? n_ : after.front().first);
        break;
      }
      case 9: {
        std::vector<PageRun> got;
        bitmap_.ForEachRunInRange(first, count,
                                  [&](PageRun r) { got.push_back(r); });
        ASSERT_EQ(got, ModelRuns(model_, first, first + count))
            << "ForEachRunInRange " << first << "+" << count;
        break;
      }
    }
  }

  // Random words at a random offset; sometimes with a bit past the end
  // (an error that must leave the bitmap alone), sometimes with num_bits.
  void MergeWords() {
    uint64_t first_page = Pick();
    uint64_t room = n_ - first_page;
    uint64_t num_words = rng_() % ((room + 63) / 64 + 2);
    std::vector<uint64_t> words(num_words);
    for (uint64_t& w : words) w = rng_() & rng_() & rng_();
    uint64_t num_bits = 64 * num_words;
    if (num_words > 0 && rng_() % 3 == 0) num_bits -= rng_() % 64;
    // Clear the bits past the end unless this round tests the error.
    const bool want_error_allowed = rng_() % 4 == 0;
    bool past_end = false;
    for (uint64_t i = 0; i < 64 * num_words; ++i) {
      bool set = (words[i / 64] >> (i % 64)) & 1;
      if (!set || i < room) continue;
      if (!want_error_allowed) {
        words[i / 64] &= ~(uint64_t{1} << (i % 64));
      } else if (i < num_bits) {
        past_end = true;
      }
    }
    Status s = rng_() % 2 == 0 && num_bits == 64 * num_words
                   ? bitmap_.MergeWords(words, first_page)
                   : bitmap_.MergeWords(words, first_page, num_bits);
    if (past_end) {
      ASSERT_EQ(s.code(), StatusCode::kOutOfRange) << s.ToString();
      return;
    }
    ASSERT_TRUE(s.ok()) << s.ToString();
    for (uint64_t i = 0; i < num_bits && i < room; ++i) {
      if ((words[i / 64] >> (i % 64)) & 1) model_[first_page + i] = true;
    }
  }

  // A coarser (or finer) bitmap rescaled into this one at 4 KiB pages.
  void Rescale() {
    const uint64_t page_bytes = 4096;
    const uint64_t ratio_shift = rng_() % 8;
    const bool coarse = rng_() % 2 == 0;
    const uint64_t src_bytes = coarse ? page_bytes << ratio_shift
                                      : page_bytes >> ratio_shift;
    const uint64_t src_pages = coarse ? (n_ >> ratio_shift) + 1
                                      : (n_ << ratio_shift);
    DirtyBitmap src(src_pages);
    for (int k = 0; k < 3 && src_pages > 0; ++k) src.Set(rng_() % src_pages);
    const Model before = model_;
    Status s = RescaleInto(src, src_bytes, bitmap_, page_bytes);
    // A coarse page starting exactly at the end is past it.
    bool past_end = false;
    src.ForEachRun([&](PageRun r) {
      for (uint64_t p = r.first; p < r.first + r.count; ++p) {
        uint64_t lo = p * src_bytes / page_bytes;
        uint64_t hi = std::min(n_, ((p + 1) * src_bytes + page_bytes - 1) / page_bytes);
        if (lo >= n_) past_end = true;
        for (uint64_t q = lo; q < hi; ++q) model_[q] = true;
      }
    });
    if (past_end) {
      ASSERT_EQ(s.code(), StatusCode::kOutOfRange) << s.ToString();
      model_ = before;  // nothing merged; Check() verifies the bitmap agrees
      return;
    }
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  void Check() {
    ASSERT_EQ(bitmap_.num_pages(), n_);
    if (n_ % 64 != 0) {
      ASSERT_EQ(bitmap_.words().back() >> (n_ % 64), 0u) << "tail bits set";
    }
    for (uint64_t p = 0; p < n_; ++p) {
      ASSERT_EQ(bitmap_.Test(p), model_[p]) << "page " << p;
    }
    ASSERT_EQ(bitmap_.Count(), ModelCount(model_, 0, n_));
    ASSERT_EQ(bitmap_.Any(), bitmap_.Count() > 0);
    ASSERT_EQ(bitmap_.Runs(), ModelRuns(model_, 0, n_));
  }

  std::mt19937_64 rng_;
  uint64_t n_ = 0;
  DirtyBitmap bitmap_;
  Model model_;
};

TEST(DirtyBitmapPropertyTest, RandomOperationSequencesMatchModel) {
  constexpr int kSequences = 3000;
  constexpr int kOpsPerSequence = 30;
  std::vector<uint64_t> seeds;
  if (const char* replay = std::getenv("CONVERGE_BITMAP_SEED")) {
    seeds.push_back(std::strtoull(replay, nullptr, 10));
  } else {
    const uint64_t base = std::random_device{}();
    for (int i = 0; i < kSequences; ++i) seeds.push_back(base + i);
  }
  for (uint64_t seed : seeds) {
    Sequence(seed).Run(kOpsPerSequence);
    if (HasFailure()) {
      ADD_FAILURE() << "seed " << seed << "; replay with CONVERGE_BITMAP_SEED="
                    << seed;
      return;
    }
  }
}

}  // namespace
}  // namespace converge
