#include "bitmap/dirty_bitmap.h"

#include <algorithm>
#include <string>

namespace converge {
namespace {

constexpr uint64_t kAllOnes = ~uint64_t{0};

// Bits [lo, hi) of a word, 0 <= lo < hi <= 64.
uint64_t WordMask(uint64_t lo, uint64_t hi) {
  uint64_t upper = hi == 64 ? kAllOnes : ((uint64_t{1} << hi) - 1);
  return upper & (kAllOnes << lo);
}

}  // namespace

DirtyBitmap::DirtyBitmap(uint64_t num_pages)
    : num_pages_(num_pages), words_((num_pages + 63) / 64, 0) {}

void DirtyBitmap::TrimTail() {
  if (num_pages_ % 64 != 0) {
    words_.back() &= (uint64_t{1} << (num_pages_ % 64)) - 1;
  }
}

void DirtyBitmap::SetRange(uint64_t first, uint64_t count) {
  assert(first <= num_pages_ && count <= num_pages_ - first);
  if (count == 0) return;
  uint64_t last = first + count;  // exclusive
  uint64_t wf = first / 64, wl = (last - 1) / 64;
  if (wf == wl) {
    words_[wf] |= WordMask(first % 64, (last - 1) % 64 + 1);
    return;
  }
  words_[wf] |= WordMask(first % 64, 64);
  std::fill(words_.begin() + wf + 1, words_.begin() + wl, kAllOnes);
  words_[wl] |= WordMask(0, (last - 1) % 64 + 1);
}

void DirtyBitmap::ClearRange(uint64_t first, uint64_t count) {
  assert(first <= num_pages_ && count <= num_pages_ - first);
  if (count == 0) return;
  uint64_t last = first + count;
  uint64_t wf = first / 64, wl = (last - 1) / 64;
  if (wf == wl) {
    words_[wf] &= ~WordMask(first % 64, (last - 1) % 64 + 1);
    return;
  }
  words_[wf] &= ~WordMask(first % 64, 64);
  std::fill(words_.begin() + wf + 1, words_.begin() + wl, 0);
  words_[wl] &= ~WordMask(0, (last - 1) % 64 + 1);
}

void DirtyBitmap::ClearAll() { std::fill(words_.begin(), words_.end(), 0); }

uint64_t DirtyBitmap::Count() const {
  uint64_t total = 0;
  for (uint64_t w : words_) total += static_cast<uint64_t>(std::popcount(w));
  return total;
}

uint64_t DirtyBitmap::CountRange(uint64_t first, uint64_t count) const {
  assert(first <= num_pages_ && count <= num_pages_ - first);
  if (count == 0) return 0;
  uint64_t last = first + count;
  uint64_t wf = first / 64, wl = (last - 1) / 64;
  if (wf == wl) {
    return std::popcount(words_[wf] & WordMask(first % 64, (last - 1) % 64 + 1));
  }
  uint64_t total = std::popcount(words_[wf] & WordMask(first % 64, 64));
  for (uint64_t i = wf + 1; i < wl; ++i) total += std::popcount(words_[i]);
  total += std::popcount(words_[wl] & WordMask(0, (last - 1) % 64 + 1));
  return total;
}

void DirtyBitmap::MergeFrom(const DirtyBitmap& other) {
  assert(other.num_pages_ == num_pages_);
  for (size_t i = 0; i < words_.size(); ++i) words_[i] |= other.words_[i];
}

Status DirtyBitmap::MergeWords(std::span<const uint64_t> kernel_words,
                               uint64_t first_page) {
  // Validate first: nothing is merged if any set bit falls past the end.
  const uint64_t covered = kernel_words.size() * 64;
  if (first_page > num_pages_ ||
      covered > num_pages_ - first_page) {
    uint64_t valid = first_page >= num_pages_ ? 0 : num_pages_ - first_page;
    for (uint64_t i = valid / 64; i < kernel_words.size(); ++i) {
      uint64_t bad = kernel_words[i];
      if (i == valid / 64) bad &= kAllOnes << (valid % 64);
      if (bad != 0) {
        uint64_t page = first_page + i * 64 +
                        static_cast<uint64_t>(std::countr_zero(bad));
        return OutOfRangeError("MergeWords: dirty bit for page " +
                               std::to_string(page) + " past the bitmap's " +
                               std::to_string(num_pages_) + " pages");
      }
    }
  }
  const uint64_t shift = first_page % 64;
  const uint64_t base = first_page / 64;
  for (uint64_t i = 0; i < kernel_words.size(); ++i) {
    uint64_t v = kernel_words[i];
    if (v == 0) continue;
    words_[base + i] |= v << shift;
    if (shift != 0 && (v >> (64 - shift)) != 0) {
      words_[base + i + 1] |= v >> (64 - shift);
    }
  }
  return OkStatus();
}

std::vector<PageRun> DirtyBitmap::Runs() const {
  std::vector<PageRun> runs;
  ForEachRun([&](PageRun r) { runs.push_back(r); });
  return runs;
}

}  // namespace converge
