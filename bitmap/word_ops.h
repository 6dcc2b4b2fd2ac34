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
  // Bit j (j < count <= 64) is set iff a run starts or ends in word w[j]
  // (at any of its bits, bit 0 included): iff w[j] differs from what
  // w[j - 1]'s top bit would continue (all zeros or all ones).
  // REQUIRES: w[-1] is readable.
  uint64_t (*edge_words)(const uint64_t* w, uint64_t count);
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
// TBB worker threads. Measured with BM_{OrWords,PopcountWords}{Serial,
// Parallel} (bench/bitmap_benchmark.cc, medians of 3, wall time) on this
// project's 2-vCPU Xeon VM, quiet and with other builds running:
//   popcount, 2^18 words:  124 us serial, 132 us parallel (loaded)
//             2^20 words:  866 us serial, 826 us parallel (loaded)
//             2^22 words: 7.07 ms serial, 6.57 ms parallel (loaded);
//                         4.16 ms serial, 0.92 ms parallel (quiet)
//   OR,       2^18 words:  325 us serial, 451 us parallel (loaded)
//             2^20 words: 1.59 ms serial, 1.95 ms parallel (loaded)
//             2^22 words: 8.53 ms serial, 11.4 ms parallel (loaded);
//                         8.16 ms serial, 9.32 ms parallel (quiet)
// Popcount is bound by one core's outstanding misses, so a second core
// helps from 2^20 words (8 MiB, a 256 GiB guest). OR is bound by memory
// bandwidth the cores share and lost at every size up to the 32 MiB
// measured, so it goes parallel only past that, at 2^23 words (64 MiB, a
// 2 TiB guest at 4 KiB pages).
inline constexpr uint64_t kParallelOrMinWords = uint64_t{1} << 23;
inline constexpr uint64_t kParallelPopcountMinWords = uint64_t{1} << 20;

// The TBB-parallel forms of or_words / popcount_words (any n; they do not
// check the thresholds above).
void OrWordsParallel(uint64_t* dst, const uint64_t* src, uint64_t n);
uint64_t PopcountWordsParallel(const uint64_t* src, uint64_t n);

// The active kernel, or its parallel form at or above the threshold.
void OrWords(uint64_t* dst, const uint64_t* src, uint64_t n);
uint64_t PopcountWords(const uint64_t* src, uint64_t n);

// The run edges inside word w (whose predecessor is prev): bit b is set iff
// bit b of w differs from the bit before it (bit 63 of prev for b == 0).
inline uint64_t EdgesInWord(uint64_t w, uint64_t prev) {
  return w ^ ((w << 1) | (prev >> 63));
}

// Calls fn(PageRun) for each maximal run of set bits in words, ascending,
// with page numbers offset by first_page (bit b of words[i] is page
// first_page + 64 * i + b). A run that reaches the last bit ends at
// first_page + 64 * words.size().
//
// Runs are found from their edges: the dispatched edge_words marks, 64
// words per call, the words where a run starts or ends, so stretches of
// all-clear and all-set words cost one vector compare per 8 words; the
// edges inside a marked word are taken with count-trailing-zeros, and they
// alternate start, end, start, ...
template <typename Fn>
void ForEachRunInWords(std::span<const uint64_t> words, uint64_t first_page,
                       Fn&& fn) {
  const uint64_t* w = words.data();
  const uint64_t n = words.size();
  if (n == 0) return;
  const Kernels& k = Active();
  uint64_t start = 0;    // bit index of the open run's first page
  bool in_run = false;   // a run started and has not ended yet
  auto take_edges = [&](uint64_t j, uint64_t edges) {
    const uint64_t base = 64 * j;
    do {
      const uint64_t bit = base + static_cast<uint64_t>(std::countr_zero(edges));
      edges &= edges - 1;
      if (in_run) {
        fn(PageRun{first_page + start, bit - start});
      } else {
        start = bit;
      }
      in_run = !in_run;
    } while (edges != 0);
  };
  if (const uint64_t e = EdgesInWord(w[0], 0); e != 0) take_edges(0, e);
  for (uint64_t block = 1; block < n; block += 64) {
    const uint64_t count = n - block < 64 ? n - block : 64;
    uint64_t marked = k.edge_words(w + block, count);
    while (marked != 0) {
      const uint64_t j = block + static_cast<uint64_t>(std::countr_zero(marked));
      marked &= marked - 1;
      take_edges(j, EdgesInWord(w[j], w[j - 1]));
    }
  }
  if (in_run) fn(PageRun{first_page + start, 64 * n - start});
}

}  // namespace converge::word_ops

#endif  // CONVERGE_BITMAP_WORD_OPS_H_
