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
  return word_ops::PopcountWords(words_.data(), words_.size());
}

uint64_t DirtyBitmap::CountRange(uint64_t first, uint64_t count) const {
  assert(first <= num_pages_ && count <= num_pages_ - first);
  if (count == 0) return 0;
  uint64_t last = first + count;
  uint64_t wf = first / 64, wl = (last - 1) / 64;
  if (wf == wl) {
    return static_cast<uint64_t>(std::popcount(
        words_[wf] & WordMask(first % 64, (last - 1) % 64 + 1)));
  }
  uint64_t total = static_cast<uint64_t>(
      std::popcount(words_[wf] & WordMask(first % 64, 64)));
  total += word_ops::PopcountWords(words_.data() + wf + 1, wl - wf - 1);
  total += static_cast<uint64_t>(
      std::popcount(words_[wl] & WordMask(0, (last - 1) % 64 + 1)));
  return total;
}

bool DirtyBitmap::Any() const {
  return word_ops::Active().find_word_not(words_.data(), 0, words_.size(), 0) !=
         words_.size();
}

uint64_t DirtyBitmap::FindNextDirty(uint64_t from) const {
  assert(from <= num_pages_);
  if (from == num_pages_) return num_pages_;
  uint64_t i = from / 64;
  uint64_t word = words_[i] & (kAllOnes << (from % 64));
  if (word == 0) {
    i = word_ops::Active().find_word_not(words_.data(), i + 1, words_.size(),
                                         0);
    if (i == words_.size()) return num_pages_;
    word = words_[i];
  }
  return 64 * i + static_cast<uint64_t>(std::countr_zero(word));
}

void DirtyBitmap::MergeFrom(const DirtyBitmap& other) {
  assert(other.num_pages_ == num_pages_);
  word_ops::OrWords(words_.data(), other.words_.data(), words_.size());
}

void DirtyBitmap::Subtract(const DirtyBitmap& other) {
  assert(other.num_pages_ == num_pages_);
  for (size_t i = 0; i < words_.size(); ++i) words_[i] &= ~other.words_[i];
}

Status DirtyBitmap::MergeWords(std::span<const uint64_t> kernel_words,
                               uint64_t first_page) {
  return MergeWords(kernel_words, first_page, 64 * kernel_words.size());
}

Status DirtyBitmap::MergeWords(std::span<const uint64_t> kernel_words,
                               uint64_t first_page, uint64_t num_bits) {
  assert(num_bits <= 64 * kernel_words.size());
  if (num_bits == 0) return OkStatus();
  // Validate first: nothing is merged if any set bit falls past the end.
  // Bits [valid, num_bits) of kernel_words would land past num_pages_.
  const uint64_t valid = first_page >= num_pages_ ? 0 : num_pages_ - first_page;
  const uint64_t n = (num_bits + 63) / 64;  // words holding the bits
  if (valid < num_bits) {
    for (uint64_t i = valid / 64; i < n; ++i) {
      uint64_t bad = kernel_words[i];
      if (i == valid / 64) bad &= kAllOnes << (valid % 64);
      if (i == n - 1) bad &= WordMask(0, (num_bits - 1) % 64 + 1);
      if (bad != 0) {
        uint64_t page = first_page + 64 * i +
                        static_cast<uint64_t>(std::countr_zero(bad));
        return OutOfRangeError("MergeWords: dirty bit for page " +
                               std::to_string(page) + " past the bitmap's " +
                               std::to_string(num_pages_) + " pages");
      }
    }
  }
  // Every set bit below m lands inside the bitmap; none is set at or past m.
  const uint64_t m = std::min(num_bits, valid);
  if (m == 0) return OkStatus();
  const uint64_t nm = (m + 63) / 64;
  const uint64_t last = kernel_words[nm - 1] & WordMask(0, (m - 1) % 64 + 1);
  const uint64_t base = first_page / 64;
  const unsigned shift = static_cast<unsigned>(first_page % 64);
  uint64_t* dst = words_.data() + base;
  if (shift == 0) {
    word_ops::OrWords(dst, kernel_words.data(), nm - 1);
    dst[nm - 1] |= last;
    return OkStatus();
  }
  if (nm >= 2) {
    dst[0] |= kernel_words[0] << shift;
    word_ops::Active().or_shifted_words(dst, kernel_words.data(), nm - 1,
                                        shift);
    dst[nm - 1] |= (last << shift) | (kernel_words[nm - 2] >> (64 - shift));
  } else {
    dst[0] |= last << shift;
  }
  const uint64_t spill = last >> (64 - shift);
  if (spill != 0) {
    assert(base + nm < words_.size());
    dst[nm] |= spill;
  }
  return OkStatus();
}

std::vector<PageRun> DirtyBitmap::Runs() const {
  std::vector<PageRun> runs;
  ForEachRun([&](PageRun r) { runs.push_back(r); });
  return runs;
}

}  // namespace converge
