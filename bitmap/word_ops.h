// Word kernels: the hot loops over kernel-layout bitmap words (OR, popcount,
// scan for the next word that differs from a value, shifted OR), in variants
// for generic x86-64, POPCNT, AVX2 and AVX-512, one of which is chosen once
// at run time from the CPU's features. Nothing here is built with
// -march=native: a library built once runs on any x86-64 (and the generic
// variant on any 64-bit target).
//
// Also the run scanner (ForEachRunInWords) that DirtyBitmap::ForEachRun and
// the rescaler share, and the TBB-parallel forms of OR and popcount.
//
// Thread-safety: every function is reentrant; callers own the words.

#ifndef CONVERGE_BITMAP_WORD_OPS_H_
#define CONVERGE_BITMAP_WORD_OPS_H_

#include <bit>
#include <cstdint>
#include <span>
#include <vector>

#include "bitmap/page_run.h"

namespace converge::word_ops {

// One variant of every kernel. All pointers are non-null.
struct Kernels {
  const char* name;  // "generic", "popcnt", "avx2", "avx512"
  // dst[i] |= src[i] for i < n.
  void (*or_words)(uint64_t* dst, const uint64_t* src, uint64_t n);
  // Sum of popcount(src[i]) for i < n.
  uint64_t (*popcount_words)(const uint64_t* src, uint64_t n);
  // The first index in [from, n) whose word != value, or n.
  uint64_t (*find_word_not)(const uint64_t* w, uint64_t from, uint64_t n,
                            uint64_t value);
  // dst[i] |= (src[i] << shift) | (src[i - 1] >> (64 - shift)) for
  // 1 <= i < n: the interior words of a shifted merge. REQUIRES: 0 < shift
  // < 64.
  void (*or_shifted_words)(uint64_t* dst, const uint64_t* src, uint64_t n,
                           unsigned shift);
};

// The best variant this CPU supports, chosen on the first call.
const Kernels& Active();

// Every variant this CPU can run, generic first (for tests and benchmarks).
std::vector<const Kernels*> Supported();

// Sizes (in words) at or above which OR and popcount split the work across
// TBB worker threads. Measured with BM_OrWords{Serial,Parallel} and
// BM_PopcountWords{Serial,Parallel} (bench/bitmap_benchmark.cc):
// PLACEHOLDER
inline constexpr uint64_t kParallelOrMinWords = uint64_t{1} << 17;
inline constexpr uint64_t kParallelPopcountMinWords = uint64_t{1} << 17;

// The TBB-parallel forms of or_words / popcount_words (any n; they do not
// check the thresholds above).
void OrWordsParallel(uint64_t* dst, const uint64_t* src, uint64_t n);
uint64_t PopcountWordsParallel(const uint64_t* src, uint64_t n);

// The active kernel, or its parallel form at or above the threshold.
void OrWords(uint64_t* dst, const uint64_t* src, uint64_t n);
uint64_t PopcountWords(const uint64_t* src, uint64_t n);

// Calls fn(PageRun) for each maximal run of set bits in words, ascending,
// with page numbers offset by first_page (bit b of words[i] is page
// first_page + 64 * i + b). A run that reaches the last bit ends at
// first_page + 64 * words.size(). Skips all-clear and all-set words in bulk
// with the active find_word_not; finds run edges with count-trailing-zeros.
template <typename Fn>
void ForEachRunInWords(std::span<const uint64_t> words, uint64_t first_page,
                       Fn&& fn) {
  constexpr uint64_t kAllOnes = ~uint64_t{0};
  const uint64_t* w = words.data();
  const uint64_t n = words.size();
  if (n == 0) return;
  const Kernels& k = Active();
  uint64_t i = 0;
  uint64_t word = w[0];  // the bits of word i not yet consumed
  for (;;) {
    if (word == 0) {
      // One more word inline (short gaps are common at moderate density),
      // then the vector scan for long clean stretches.
      if (++i == n) return;
      word = w[i];
      if (word == 0) {
        if (++i == n) return;
        i = k.find_word_not(w, i, n, 0);
        if (i == n) return;
        word = w[i];
      }
    }
    const uint64_t start_bit = static_cast<uint64_t>(std::countr_zero(word));
    const uint64_t start = 64 * i + start_bit;
    // The first clear bit at or after start_bit, skipping all-set words.
    uint64_t clear = ~word & (kAllOnes << start_bit);
    if (clear == 0) {
      if (++i == n) {
        fn(PageRun{first_page + start, 64 * n - start});
        return;
      }
      clear = ~w[i];
      if (clear == 0) {
        i = k.find_word_not(w, i, n, kAllOnes);
        if (i == n) {
          fn(PageRun{first_page + start, 64 * n - start});
          return;
        }
        clear = ~w[i];
      }
    }
    const uint64_t end_bit = static_cast<uint64_t>(std::countr_zero(clear));
    fn(PageRun{first_page + start, 64 * i + end_bit - start});
    word = w[i] & (kAllOnes << end_bit);  // bit end_bit is clear, so < 64
  }
}

}  // namespace converge::word_ops

#endif  // CONVERGE_BITMAP_WORD_OPS_H_
