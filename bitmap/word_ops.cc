#include "bitmap/word_ops.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/parallel_reduce.h>

#include <functional>

#if defined(__x86_64__)
#include <immintrin.h>
#define CONVERGE_X86_KERNELS 1
#endif

namespace converge::word_ops {
namespace {

// Generic: plain 64-bit code that any x86-64 (or other 64-bit CPU) runs.
// Four independent words per step so the loop is not latency bound.

void OrWordsGeneric(uint64_t* dst, const uint64_t* src, uint64_t n) {
  uint64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    dst[i] |= src[i];
    dst[i + 1] |= src[i + 1];
    dst[i + 2] |= src[i + 2];
    dst[i + 3] |= src[i + 3];
  }
  for (; i < n; ++i) dst[i] |= src[i];
}

// Without a popcount instruction std::popcount is a SWAR sequence; the four
// accumulators keep four of them in flight.
uint64_t PopcountWordsGeneric(const uint64_t* src, uint64_t n) {
  uint64_t c0 = 0, c1 = 0, c2 = 0, c3 = 0;
  uint64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    c0 += static_cast<uint64_t>(std::popcount(src[i]));
    c1 += static_cast<uint64_t>(std::popcount(src[i + 1]));
    c2 += static_cast<uint64_t>(std::popcount(src[i + 2]));
    c3 += static_cast<uint64_t>(std::popcount(src[i + 3]));
  }
  for (; i < n; ++i) c0 += static_cast<uint64_t>(std::popcount(src[i]));
  return c0 + c1 + c2 + c3;
}

uint64_t FindWordNotGeneric(const uint64_t* w, uint64_t from, uint64_t n,
                            uint64_t value) {
  uint64_t i = from;
  for (; i + 4 <= n; i += 4) {
    if (((w[i] ^ value) | (w[i + 1] ^ value) | (w[i + 2] ^ value) |
         (w[i + 3] ^ value)) != 0) {
      break;
    }
  }
  for (; i < n; ++i) {
    if (w[i] != value) return i;
  }
  return n;
}

uint64_t EdgeWordsGeneric(const uint64_t* w, uint64_t count) {
  const uint64_t* prev = w - 1;  // prev[j] is w[j - 1]
  uint64_t marked = 0;
  for (uint64_t j = 0; j < count; ++j) {
    const uint64_t fill = static_cast<uint64_t>(static_cast<int64_t>(prev[j]) >> 63);
    marked |= static_cast<uint64_t>(w[j] != fill) << j;
  }
  return marked;
}

void OrShiftedWordsGeneric(uint64_t* dst, const uint64_t* src, uint64_t n,
                           unsigned shift) {
  const unsigned back = 64 - shift;
  for (uint64_t i = 1; i < n; ++i) {
    dst[i] |= (src[i] << shift) | (src[i - 1] >> back);
  }
}

#if CONVERGE_X86_KERNELS

// POPCNT: the generic loops with the popcount instruction.
__attribute__((target("popcnt"))) uint64_t PopcountWordsPopcnt(
    const uint64_t* src, uint64_t n) {
  uint64_t c0 = 0, c1 = 0, c2 = 0, c3 = 0;
  uint64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    c0 += static_cast<uint64_t>(__builtin_popcountll(src[i]));
    c1 += static_cast<uint64_t>(__builtin_popcountll(src[i + 1]));
    c2 += static_cast<uint64_t>(__builtin_popcountll(src[i + 2]));
    c3 += static_cast<uint64_t>(__builtin_popcountll(src[i + 3]));
  }
  for (; i < n; ++i) c0 += static_cast<uint64_t>(__builtin_popcountll(src[i]));
  return c0 + c1 + c2 + c3;
}

// AVX2: 32-byte vectors, two per step.

__attribute__((target("avx2"))) void OrWordsAvx2(uint64_t* dst,
                                                 const uint64_t* src,
                                                 uint64_t n) {
  uint64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    auto* d = reinterpret_cast<__m256i*>(dst + i);
    const auto* s = reinterpret_cast<const __m256i*>(src + i);
    __m256i a = _mm256_or_si256(_mm256_loadu_si256(d), _mm256_loadu_si256(s));
    __m256i b = _mm256_or_si256(_mm256_loadu_si256(d + 1),
                                _mm256_loadu_si256(s + 1));
    _mm256_storeu_si256(d, a);
    _mm256_storeu_si256(d + 1, b);
  }
  for (; i < n; ++i) dst[i] |= src[i];
}

// Nibble-table popcount (Mula): per-byte counts from two shuffles, summed
// into 64-bit lanes with SAD against zero.
__attribute__((target("avx2,popcnt"))) uint64_t PopcountWordsAvx2(
    const uint64_t* src, uint64_t n) {
  const __m256i table = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3,
                                         2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3,
                                         1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i low = _mm256_set1_epi8(0x0f);
  const __m256i zero = _mm256_setzero_si256();
  __m256i acc = zero;
  uint64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const auto* s = reinterpret_cast<const __m256i*>(src + i);
    __m256i a = _mm256_loadu_si256(s);
    __m256i b = _mm256_loadu_si256(s + 1);
    __m256i ca = _mm256_add_epi8(
        _mm256_shuffle_epi8(table, _mm256_and_si256(a, low)),
        _mm256_shuffle_epi8(table,
                            _mm256_and_si256(_mm256_srli_epi16(a, 4), low)));
    __m256i cb = _mm256_add_epi8(
        _mm256_shuffle_epi8(table, _mm256_and_si256(b, low)),
        _mm256_shuffle_epi8(table,
                            _mm256_and_si256(_mm256_srli_epi16(b, 4), low)));
    // At most 16 per byte after the add: no overflow.
    acc = _mm256_add_epi64(acc, _mm256_sad_epu8(_mm256_add_epi8(ca, cb), zero));
  }
  uint64_t total = static_cast<uint64_t>(_mm256_extract_epi64(acc, 0)) +
                   static_cast<uint64_t>(_mm256_extract_epi64(acc, 1)) +
                   static_cast<uint64_t>(_mm256_extract_epi64(acc, 2)) +
                   static_cast<uint64_t>(_mm256_extract_epi64(acc, 3));
  for (; i < n; ++i) total += static_cast<uint64_t>(__builtin_popcountll(src[i]));
  return total;
}

__attribute__((target("avx2,bmi"))) uint64_t FindWordNotAvx2(
    const uint64_t* w, uint64_t from, uint64_t n, uint64_t value) {
  const __m256i v = _mm256_set1_epi64x(static_cast<long long>(value));
  uint64_t i = from;
  for (; i + 8 <= n; i += 8) {
    const auto* p = reinterpret_cast<const __m256i*>(w + i);
    __m256i ea = _mm256_cmpeq_epi64(_mm256_loadu_si256(p), v);
    __m256i eb = _mm256_cmpeq_epi64(_mm256_loadu_si256(p + 1), v);
    // One bit per word, set where the word equals value.
    unsigned eq = static_cast<unsigned>(
                      _mm256_movemask_pd(_mm256_castsi256_pd(ea))) |
                  (static_cast<unsigned>(
                       _mm256_movemask_pd(_mm256_castsi256_pd(eb)))
                   << 4);
    if (eq != 0xff) return i + static_cast<uint64_t>(std::countr_zero(~eq));
  }
  for (; i < n; ++i) {
    if (w[i] != value) return i;
  }
  return n;
}

__attribute__((target("avx2"))) uint64_t EdgeWordsAvx2(const uint64_t* w,
                                                      uint64_t count) {
  const __m256i zero = _mm256_setzero_si256();
  const uint64_t* prev = w - 1;  // prev[j] is w[j - 1]
  uint64_t marked = 0;
  uint64_t j = 0;
  for (; j + 4 <= count; j += 4) {
    __m256i cur = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + j));
    // All ones where the previous word's top bit is set.
    __m256i fill = _mm256_cmpgt_epi64(
        zero, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(prev + j)));
    unsigned same = static_cast<unsigned>(
        _mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpeq_epi64(cur, fill))));
    marked |= static_cast<uint64_t>(~same & 0xf) << j;
  }
  for (; j < count; ++j) {
    const uint64_t fill = static_cast<uint64_t>(static_cast<int64_t>(prev[j]) >> 63);
    marked |= static_cast<uint64_t>(w[j] != fill) << j;
  }
  return marked;
}

__attribute__((target("avx2"))) void OrShiftedWordsAvx2(uint64_t* dst,
                                                        const uint64_t* src,
                                                        uint64_t n,
                                                        unsigned shift) {
  const __m128i left = _mm_cvtsi32_si128(static_cast<int>(shift));
  const __m128i right = _mm_cvtsi32_si128(static_cast<int>(64 - shift));
  uint64_t i = 1;
  for (; i + 4 <= n; i += 4) {
    __m256i cur = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i));
    __m256i prev =
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i - 1));
    auto* d = reinterpret_cast<__m256i*>(dst + i);
    __m256i merged = _mm256_or_si256(_mm256_sll_epi64(cur, left),
                                     _mm256_srl_epi64(prev, right));
    _mm256_storeu_si256(d, _mm256_or_si256(_mm256_loadu_si256(d), merged));
  }
  const unsigned back = 64 - shift;
  for (; i < n; ++i) dst[i] |= (src[i] << shift) | (src[i - 1] >> back);
}

// AVX-512: 64-byte vectors, two per step; VPOPCNTQ counts 8 words at once.

__attribute__((target("avx512f"))) void OrWordsAvx512(uint64_t* dst,
                                                      const uint64_t* src,
                                                      uint64_t n) {
  uint64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512i a = _mm512_or_si512(_mm512_loadu_si512(dst + i),
                                _mm512_loadu_si512(src + i));
    __m512i b = _mm512_or_si512(_mm512_loadu_si512(dst + i + 8),
                                _mm512_loadu_si512(src + i + 8));
    _mm512_storeu_si512(dst + i, a);
    _mm512_storeu_si512(dst + i + 8, b);
  }
  for (; i < n; ++i) dst[i] |= src[i];
}

__attribute__((target("avx512f,avx512vpopcntdq,popcnt"))) uint64_t
PopcountWordsAvx512(const uint64_t* src, uint64_t n) {
  __m512i acc0 = _mm512_setzero_si512();
  __m512i acc1 = _mm512_setzero_si512();
  uint64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm512_add_epi64(acc0,
                            _mm512_popcnt_epi64(_mm512_loadu_si512(src + i)));
    acc1 = _mm512_add_epi64(
        acc1, _mm512_popcnt_epi64(_mm512_loadu_si512(src + i + 8)));
  }
  // Lanes summed through memory: GCC 12's _mm512_reduce_add_epi64 trips
  // -Wuninitialized inside its own header.
  uint64_t lanes[8];
  _mm512_storeu_si512(lanes, _mm512_add_epi64(acc0, acc1));
  uint64_t total = 0;
  for (uint64_t lane : lanes) total += lane;
  for (; i < n; ++i) total += static_cast<uint64_t>(__builtin_popcountll(src[i]));
  return total;
}

__attribute__((target("avx512f,bmi"))) uint64_t FindWordNotAvx512(
    const uint64_t* w, uint64_t from, uint64_t n, uint64_t value) {
  const __m512i v = _mm512_set1_epi64(static_cast<long long>(value));
  uint64_t i = from;
  for (; i + 16 <= n; i += 16) {
    // One bit per word, set where the word differs from value.
    unsigned ne =
        static_cast<unsigned>(_mm512_cmpneq_epu64_mask(_mm512_loadu_si512(w + i), v)) |
        (static_cast<unsigned>(
             _mm512_cmpneq_epu64_mask(_mm512_loadu_si512(w + i + 8), v))
         << 8);
    if (ne != 0) return i + static_cast<uint64_t>(std::countr_zero(ne));
  }
  for (; i < n; ++i) {
    if (w[i] != value) return i;
  }
  return n;
}

__attribute__((target("avx512f"))) uint64_t EdgeWordsAvx512(
    const uint64_t* w, uint64_t count) {
  // Masks, not an arithmetic shift: GCC 12's _mm512_srai_epi64 trips
  // -Wmaybe-uninitialized inside its own header.
  const __m512i zero = _mm512_setzero_si512();
  const __m512i ones = _mm512_set1_epi64(-1);
  const uint64_t* prev = w - 1;  // prev[j] is w[j - 1]
  uint64_t marked = 0;
  uint64_t j = 0;
  for (; j + 8 <= count; j += 8) {
    __m512i cur = _mm512_loadu_si512(w + j);
    __mmask8 prev_top = _mm512_cmplt_epi64_mask(_mm512_loadu_si512(prev + j), zero);
    __mmask8 continues =
        static_cast<__mmask8>((prev_top & _mm512_cmpeq_epi64_mask(cur, ones)) |
                              (~prev_top & _mm512_cmpeq_epi64_mask(cur, zero)));
    marked |= static_cast<uint64_t>(static_cast<uint8_t>(~continues)) << j;
  }
  for (; j < count; ++j) {
    const uint64_t fill = static_cast<uint64_t>(static_cast<int64_t>(prev[j]) >> 63);
    marked |= static_cast<uint64_t>(w[j] != fill) << j;
  }
  return marked;
}

constexpr Kernels kPopcnt = {"popcnt", OrWordsGeneric, PopcountWordsPopcnt,
                             FindWordNotGeneric, EdgeWordsGeneric, OrShiftedWordsGeneric};
constexpr Kernels kAvx2 = {"avx2", OrWordsAvx2, PopcountWordsAvx2,
                           FindWordNotAvx2, EdgeWordsAvx2, OrShiftedWordsAvx2};
constexpr Kernels kAvx512 = {"avx512", OrWordsAvx512, PopcountWordsAvx512,
                             FindWordNotAvx512, EdgeWordsAvx512, OrShiftedWordsAvx2};

bool HasPopcnt() { return __builtin_cpu_supports("popcnt"); }
bool HasAvx2() { return __builtin_cpu_supports("avx2") && HasPopcnt(); }
bool HasAvx512() {
  return __builtin_cpu_supports("avx512f") &&
         __builtin_cpu_supports("avx512vpopcntdq") && HasAvx2();
}

#endif  // CONVERGE_X86_KERNELS

constexpr Kernels kGeneric = {"generic", OrWordsGeneric, PopcountWordsGeneric,
                              FindWordNotGeneric, EdgeWordsGeneric, OrShiftedWordsGeneric};

const Kernels& Select() {
#if CONVERGE_X86_KERNELS
  __builtin_cpu_init();
  if (HasAvx512()) return kAvx512;
  if (HasAvx2()) return kAvx2;
  if (HasPopcnt()) return kPopcnt;
#endif
  return kGeneric;
}

// Work is split into chunks of at least this many words (512 KiB), so a
// chunk is long enough to amortize a task switch several hundred times over.
constexpr uint64_t kParallelGrainWords = uint64_t{1} << 16;

}  // namespace

const Kernels& Active() {
  static const Kernels& kernels = Select();
  return kernels;
}

std::vector<const Kernels*> Supported() {
  std::vector<const Kernels*> all = {&kGeneric};
#if CONVERGE_X86_KERNELS
  __builtin_cpu_init();
  if (HasPopcnt()) all.push_back(&kPopcnt);
  if (HasAvx2()) all.push_back(&kAvx2);
  if (HasAvx512()) all.push_back(&kAvx512);
#endif
  return all;
}

void OrWordsParallel(uint64_t* dst, const uint64_t* src, uint64_t n) {
  const Kernels& k = Active();
  tbb::parallel_for(tbb::blocked_range<uint64_t>(0, n, kParallelGrainWords),
                    [&](const tbb::blocked_range<uint64_t>& r) {
                      k.or_words(dst + r.begin(), src + r.begin(), r.size());
                    });
}

uint64_t PopcountWordsParallel(const uint64_t* src, uint64_t n) {
  const Kernels& k = Active();
  return tbb::parallel_reduce(
      tbb::blocked_range<uint64_t>(0, n, kParallelGrainWords), uint64_t{0},
      [&](const tbb::blocked_range<uint64_t>& r, uint64_t partial) {
        return partial + k.popcount_words(src + r.begin(), r.size());
      },
      std::plus<uint64_t>());
}

void OrWords(uint64_t* dst, const uint64_t* src, uint64_t n) {
  if (n >= kParallelOrMinWords) {
    OrWordsParallel(dst, src, n);
  } else {
    Active().or_words(dst, src, n);
  }
}

uint64_t PopcountWords(const uint64_t* src, uint64_t n) {
  if (n >= kParallelPopcountMinWords) return PopcountWordsParallel(src, n);
  return Active().popcount_words(src, n);
}

}  // namespace converge::word_ops
