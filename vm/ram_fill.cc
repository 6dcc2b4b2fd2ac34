#include "vm/ram_fill.h"

#include <cassert>
#include <cstring>
#include <string>
#include <vector>

namespace converge {
namespace {

constexpr uint64_t kPageBytes = 4096;

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// 64 KiB of English-looking text: words from a small vocabulary separated by
// spaces and the odd newline. Text pages are 4 KiB slices of it.
std::vector<uint8_t> MakeCorpus(uint64_t seed) {
  static const char* const kWords[] = {
      "the",    "page",   "dirty",   "memory", "guest",  "migration",
      "of",     "and",    "to",      "a",      "kernel", "device",
      "bitmap", "write",  "read",    "in",     "is",     "for",
      "that",   "with",   "on",      "it",     "as",     "was",
      "state",  "buffer", "network", "file",   "system", "process",
      "data",   "time",   "error",   "value",  "return", "struct"};
  constexpr size_t kNumWords = sizeof(kWords) / sizeof(kWords[0]);
  constexpr size_t kCorpusBytes = 64 * 1024;
  std::vector<uint8_t> corpus;
  corpus.reserve(kCorpusBytes + 16);
  uint64_t state = seed;
  while (corpus.size() < kCorpusBytes) {
    state = SplitMix64(state);
    const char* word = kWords[state % kNumWords];
    corpus.insert(corpus.end(), word, word + strlen(word));
    corpus.push_back((state >> 32) % 11 == 0 ? '\n' : ' ');
  }
  corpus.resize(kCorpusBytes);
  return corpus;
}

void FillRandomPage(uint8_t* page, uint64_t state) {
  uint64_t words[kPageBytes / 8];
  for (uint64_t& w : words) {
    state = SplitMix64(state);
    w = state;
  }
  memcpy(page, words, kPageBytes);
}

}  // namespace

Result<RamFillCounts> FillGuestRam(std::span<uint8_t> ram,
                                   uint64_t first_page,
                                   const RamFillOptions& options) {
  assert(ram.size() % kPageBytes == 0);
  const double zero = options.zero_fraction;
  const double text = options.text_fraction;
  if (!(zero >= 0 && zero <= 1) || !(text >= 0 && text <= 1) ||
      zero + text > 1.0 + 1e-9) {
    return InvalidArgumentError(
        "RAM fill fractions must lie in [0, 1] and sum to at most 1: "
        "zero_fraction " + std::to_string(zero) + ", text_fraction " +
        std::to_string(text));
  }
  const std::vector<uint8_t> corpus = MakeCorpus(options.seed);
  // Thresholds on the top 32 bits of a per-page hash.
  const uint64_t zero_below = static_cast<uint64_t>(zero * 4294967296.0);
  const uint64_t text_below =
      static_cast<uint64_t>((zero + text) * 4294967296.0);
  RamFillCounts counts;
  const uint64_t num_pages = ram.size() / kPageBytes;
  for (uint64_t i = 0; i < num_pages; ++i) {
    const uint64_t h = SplitMix64(options.seed ^ SplitMix64(first_page + i));
    const uint64_t pick = h >> 32;
    uint8_t* page = ram.data() + i * kPageBytes;
    if (pick < zero_below) {
      ++counts.zero_pages;
    } else if (pick < text_below) {
      const uint64_t offset = (h % (corpus.size() - kPageBytes)) & ~uint64_t{7};
      memcpy(page, corpus.data() + offset, kPageBytes);
      ++counts.text_pages;
    } else {
      FillRandomPage(page, h);
      ++counts.random_pages;
    }
  }
  return counts;
}

}  // namespace converge
