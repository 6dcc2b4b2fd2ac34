// bitmap/ at memory speed: every benchmark runs on a 32 MiB bitmap (2^28
// pages, a 1 TiB guest at 4 KiB pages) and reports bytes of bitmap per
// second of wall time (the parallel paths use several threads), against
// BM_Memcpy of the same 32 MiB as the baseline. Run-walking
// benchmarks also report items/s = runs emitted (so ns per run can be read)
// and are compared against BM_PerBitRuns, the naive per-bit loop.
//
// Densities are in basis points (0, 10 = 0.1 %, 100 = 1 %, 1000 = 10 %,
// 10000 = 100 %); "clustered" bitmaps hold runs of 64-512 pages.

#include <benchmark/benchmark.h>

#include <cstring>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "bitmap/atomic_dirty_bitmap.h"
#include "bitmap/dirty_bitmap.h"
#include "bitmap/rescale.h"
#include "bitmap/word_ops.h"

namespace converge {
namespace {

constexpr uint64_t kPages = uint64_t{1} << 28;
constexpr uint64_t kBitmapBytes = kPages / 8;

// splitmix64: fast enough that building 10 % random bitmaps is quick.
struct Rng {
  uint64_t s;
  uint64_t operator()() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
};

DirtyBitmap MakeBitmap(uint64_t pages, int64_t density_bp, bool clustered,
                       uint64_t seed) {
  DirtyBitmap b(pages);
  Rng rng{seed};
  if (density_bp >= 10000) {
    b.SetRange(0, pages);
  } else if (density_bp > 0 && clustered) {
    // Runs of 64..512 pages (mean 288) with gaps keeping the density.
    const uint64_t mean_gap = 288 * (10000 - static_cast<uint64_t>(density_bp)) /
                              static_cast<uint64_t>(density_bp);
    uint64_t page = rng() % (2 * mean_gap + 1);
    while (page < pages) {
      uint64_t len = std::min<uint64_t>(64 + rng() % 449, pages - page);
      b.SetRange(page, len);
      page += len + 1 + rng() % (2 * mean_gap + 1);
    }
  } else if (density_bp > 0) {
    const uint64_t dirty = pages / 10000 * static_cast<uint64_t>(density_bp);
    for (uint64_t i = 0; i < dirty; ++i) b.Set(rng() % pages);
  }
  return b;
}

// Bitmaps are built once per (density, clustered) and shared.
const DirtyBitmap& CachedBitmap(int64_t density_bp, bool clustered) {
  static auto* cache = new std::map<std::pair<int64_t, bool>, DirtyBitmap>();
  auto key = std::make_pair(density_bp, clustered);
  auto it = cache->find(key);
  if (it == cache->end()) {
    it = cache->emplace(key, MakeBitmap(kPages, density_bp, clustered, 42)).first;
  }
  return it->second;
}

void DensityArgs(benchmark::internal::Benchmark* b) {
  b->ArgNames({"density_bp", "clustered"});
  for (int64_t clustered : {0, 1}) {
    for (int64_t bp : {0, 10, 100, 1000, 10000}) {
      if (clustered && (bp == 0 || bp == 10000)) continue;  // same as random
      b->Args({bp, clustered});
    }
  }
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}

void BM_Memcpy(benchmark::State& state) {
  std::vector<uint64_t> src(kBitmapBytes / 8, 0x5555), dst(kBitmapBytes / 8, 1);
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), kBitmapBytes);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kBitmapBytes));
}
BENCHMARK(BM_Memcpy)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_MergeFrom(benchmark::State& state) {
  DirtyBitmap dst = CachedBitmap(100, false);
  const DirtyBitmap& src = CachedBitmap(100, true);
  for (auto _ : state) {
    dst.MergeFrom(src);
    benchmark::DoNotOptimize(dst.words().data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kBitmapBytes));
}
BENCHMARK(BM_MergeFrom)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Count(benchmark::State& state) {
  const DirtyBitmap& b = CachedBitmap(1000, false);
  for (auto _ : state) {
    uint64_t c = b.Count();
    benchmark::DoNotOptimize(c);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kBitmapBytes));
}
BENCHMARK(BM_Count)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_ForEachRun(benchmark::State& state) {
  const DirtyBitmap& b = CachedBitmap(state.range(0), state.range(1) != 0);
  uint64_t runs = 0;
  for (auto _ : state) {
    uint64_t n = 0, pages = 0;
    b.ForEachRun([&](PageRun r) {
      ++n;
      pages += r.count;
    });
    benchmark::DoNotOptimize(pages);
    runs += n;
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kBitmapBytes));
  state.SetItemsProcessed(static_cast<int64_t>(runs));
}
BENCHMARK(BM_ForEachRun)->Apply(DensityArgs);

// The naive baseline: test every bit, extend or start a run.
void BM_PerBitRuns(benchmark::State& state) {
  const DirtyBitmap& b = CachedBitmap(state.range(0), state.range(1) != 0);
  uint64_t runs = 0;
  for (auto _ : state) {
    uint64_t n = 0, pages = 0;
    uint64_t start = 0;
    bool in_run = false;
    for (uint64_t p = 0; p < kPages; ++p) {
      bool dirty = b.Test(p);
      if (dirty && !in_run) {
        start = p;
        in_run = true;
      } else if (!dirty && in_run) {
        ++n;
        pages += p - start;
        in_run = false;
      }
    }
    if (in_run) {
      ++n;
      pages += kPages - start;
    }
    benchmark::DoNotOptimize(pages);
    runs += n;
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kBitmapBytes));
  state.SetItemsProcessed(static_cast<int64_t>(runs));
}
BENCHMARK(BM_PerBitRuns)->Apply(DensityArgs);

// A 32 MiB kernel bitmap merged at a page offset that is not a multiple of
// 64 (the shift-merge path).
void BM_MergeWordsUnaligned(benchmark::State& state) {
  const DirtyBitmap& src = CachedBitmap(100, true);
  DirtyBitmap dst(kPages + 64);
  for (auto _ : state) {
    Status s = dst.MergeWords(src.words(), 13);
    benchmark::DoNotOptimize(s);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kBitmapBytes));
}
BENCHMARK(BM_MergeWordsUnaligned)->Unit(benchmark::kMillisecond)->UseRealTime();

// Harvest of an AtomicDirtyBitmap refilled (untimed) before every pass.
void BM_AtomicHarvest(benchmark::State& state) {
  const DirtyBitmap& pattern = CachedBitmap(state.range(0), false);
  AtomicDirtyBitmap a(kPages);
  DirtyBitmap out(kPages);
  for (auto _ : state) {
    state.PauseTiming();
    pattern.ForEachRun([&](PageRun r) { a.SetRange(r.first, r.count); });
    state.ResumeTiming();
    a.HarvestInto(out);
    benchmark::DoNotOptimize(out.words().data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kBitmapBytes));
}
BENCHMARK(BM_AtomicHarvest)
    ->ArgName("density_bp")
    ->Arg(0)
    ->Arg(100)
    ->Arg(10000)
    ->Unit(benchmark::kMillisecond)->UseRealTime();

// A 1 TiB IOMMU bitmap at 2 MiB (1 % of pages dirty, clustered) into the
// 4 KiB RAM bitmap; bytes are those of the 32 MiB destination.
void BM_RescaleCoarseToFine(benchmark::State& state) {
  const DirtyBitmap coarse = MakeBitmap(kPages / 512, 100, false, 7);
  DirtyBitmap ram(kPages);
  for (auto _ : state) {
    Status s = RescaleInto(coarse, 2 << 20, ram, 4096);
    benchmark::DoNotOptimize(s);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kBitmapBytes));
}
BENCHMARK(BM_RescaleCoarseToFine)->Unit(benchmark::kMillisecond)->UseRealTime();

// Each kernel variant this CPU runs, on the 32 MiB bitmap; the argument is
// the index into word_ops::Supported() (the label names the variant).
void BM_PopcountVariant(benchmark::State& state) {
  const word_ops::Kernels* k =
      word_ops::Supported()[static_cast<size_t>(state.range(0))];
  const DirtyBitmap& b = CachedBitmap(1000, false);
  for (auto _ : state) {
    uint64_t c = k->popcount_words(b.words().data(), b.num_words());
    benchmark::DoNotOptimize(c);
  }
  state.SetLabel(k->name);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kBitmapBytes));
}

void BM_FindWordNotVariant(benchmark::State& state) {
  const word_ops::Kernels* k =
      word_ops::Supported()[static_cast<size_t>(state.range(0))];
  const DirtyBitmap& b = CachedBitmap(0, false);
  for (auto _ : state) {
    uint64_t i = k->find_word_not(b.words().data(), 0, b.num_words(), 0);
    benchmark::DoNotOptimize(i);
  }
  state.SetLabel(k->name);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kBitmapBytes));
}

void BM_OrVariant(benchmark::State& state) {
  const word_ops::Kernels* k =
      word_ops::Supported()[static_cast<size_t>(state.range(0))];
  DirtyBitmap dst = CachedBitmap(100, false);
  const DirtyBitmap& src = CachedBitmap(100, true);
  for (auto _ : state) {
    k->or_words(dst.words().data(), src.words().data(), dst.num_words());
    benchmark::ClobberMemory();
  }
  state.SetLabel(k->name);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kBitmapBytes));
}

void VariantArgs(benchmark::internal::Benchmark* b) {
  b->ArgName("variant");
  for (size_t i = 0; i < word_ops::Supported().size(); ++i) {
    b->Arg(static_cast<int64_t>(i));
  }
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}
BENCHMARK(BM_PopcountVariant)->Apply(VariantArgs);
BENCHMARK(BM_FindWordNotVariant)->Apply(VariantArgs);
BENCHMARK(BM_OrVariant)->Apply(VariantArgs);

// The TBB thresholds (word_ops::kParallel*MinWords): serial vs parallel
// over bitmap sizes from 8 KiB to 32 MiB (the argument is words).
void BM_OrWordsSerial(benchmark::State& state) {
  const uint64_t n = static_cast<uint64_t>(state.range(0));
  std::vector<uint64_t> dst(n, 1), src(n, 2);
  for (auto _ : state) {
    word_ops::Active().or_words(dst.data(), src.data(), n);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * n * 8));
}

void BM_OrWordsParallel(benchmark::State& state) {
  const uint64_t n = static_cast<uint64_t>(state.range(0));
  std::vector<uint64_t> dst(n, 1), src(n, 2);
  for (auto _ : state) {
    word_ops::OrWordsParallel(dst.data(), src.data(), n);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * n * 8));
}

void BM_PopcountWordsSerial(benchmark::State& state) {
  const uint64_t n = static_cast<uint64_t>(state.range(0));
  std::vector<uint64_t> src(n, 0x1234567);
  for (auto _ : state) {
    uint64_t c = word_ops::Active().popcount_words(src.data(), n);
    benchmark::DoNotOptimize(c);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * n * 8));
}

void BM_PopcountWordsParallel(benchmark::State& state) {
  const uint64_t n = static_cast<uint64_t>(state.range(0));
  std::vector<uint64_t> src(n, 0x1234567);
  for (auto _ : state) {
    uint64_t c = word_ops::PopcountWordsParallel(src.data(), n);
    benchmark::DoNotOptimize(c);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * n * 8));
}

void ThresholdSizes(benchmark::internal::Benchmark* b) {
  b->ArgName("words")->RangeMultiplier(4)->Range(1 << 10, 1 << 22)->UseRealTime();
}
BENCHMARK(BM_OrWordsSerial)->Apply(ThresholdSizes);
BENCHMARK(BM_OrWordsParallel)->Apply(ThresholdSizes);
BENCHMARK(BM_PopcountWordsSerial)->Apply(ThresholdSizes);
BENCHMARK(BM_PopcountWordsParallel)->Apply(ThresholdSizes);

}  // namespace
}  // namespace converge
