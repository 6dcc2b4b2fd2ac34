#include "bitmap/atomic_dirty_bitmap.h"

#include <bit>

namespace converge {
namespace {

constexpr uint64_t kAllOnes = ~uint64_t{0};

// Bits [lo, hi) of a word, 0 <= lo < hi <= 64.
uint64_t WordMask(uint64_t lo, uint64_t hi) {
  uint64_t upper = hi == 64 ? kAllOnes : ((uint64_t{1} << hi) - 1);
  return upper & (kAllOnes << lo);
}

}  // namespace

AtomicDirtyBitmap::AtomicDirtyBitmap(uint64_t num_pages)
    : num_pages_(num_pages),
      num_words_((num_pages + 63) / 64),
      words_(std::make_unique<std::atomic<uint64_t>[]>(num_words_)) {
  // make_unique value-initializes: every word starts at 0. Publishing the
  // object to other threads is the creator's job (a thread start, a mutex).
}

void AtomicDirtyBitmap::SetRange(uint64_t first, uint64_t count) {
  assert(first <= num_pages_ && count <= num_pages_ - first);
  if (count == 0) return;
  const uint64_t last = first + count;  // exclusive
  const uint64_t wf = first / 64, wl = (last - 1) / 64;
  // Each fetch_or is a release: the caller's writes to the range happen
  // before any harvester that acquires one of these bits.
  if (wf == wl) {
    words_[wf].fetch_or(WordMask(first % 64, (last - 1) % 64 + 1),
                        std::memory_order_release);
    return;
  }
  words_[wf].fetch_or(WordMask(first % 64, 64), std::memory_order_release);
  for (uint64_t i = wf + 1; i < wl; ++i) {
    // A whole word needs no read-modify-write: the store only turns bits
    // on, every one of them in the range, so racing with a harvest's
    // exchange either hands them to that harvest or leaves them for the
    // next. Release as above.
    words_[i].store(kAllOnes, std::memory_order_release);
  }
  words_[wl].fetch_or(WordMask(0, (last - 1) % 64 + 1),
                      std::memory_order_release);
}

uint64_t AtomicDirtyBitmap::Count() const {
  uint64_t total = 0;
  for (uint64_t i = 0; i < num_words_; ++i) {
    // Relaxed: a count is a statistic and orders no other memory.
    total += static_cast<uint64_t>(
        std::popcount(words_[i].load(std::memory_order_relaxed)));
  }
  return total;
}

void AtomicDirtyBitmap::TakeBits(uint64_t i, uint64_t mask,
                                 uint64_t* out_words) {
  // Relaxed pre-check: a word seen as 0 is skipped without a locked write.
  // A bit set after this load is in the word's modification order after
  // it and stays for the next harvest, so skipping cannot lose it.
  if ((words_[i].load(std::memory_order_relaxed) & mask) == 0) return;
  // Acquire: pairs with the producers' release fetch_or, so their writes
  // before marking are visible to this thread once it holds the bits.
  uint64_t taken = mask == kAllOnes
                       ? words_[i].exchange(0, std::memory_order_acquire)
                       : words_[i].fetch_and(~mask, std::memory_order_acquire) &
                             mask;
  out_words[i] |= taken;
}

void AtomicDirtyBitmap::HarvestInto(DirtyBitmap& out) {
  assert(out.num_pages() == num_pages_);
  uint64_t* out_words = out.words().data();
  uint64_t i = 0;
  for (; i + 4 <= num_words_; i += 4) {
    // Relaxed, as in TakeBits: clean stretches are skipped four words at a
    // time without a locked instruction.
    if ((words_[i].load(std::memory_order_relaxed) |
         words_[i + 1].load(std::memory_order_relaxed) |
         words_[i + 2].load(std::memory_order_relaxed) |
         words_[i + 3].load(std::memory_order_relaxed)) == 0) {
      continue;
    }
    for (uint64_t j = i; j < i + 4; ++j) TakeBits(j, kAllOnes, out_words);
  }
  for (; i < num_words_; ++i) TakeBits(i, kAllOnes, out_words);
}

void AtomicDirtyBitmap::HarvestRangeInto(uint64_t first, uint64_t count,
                                         DirtyBitmap& out) {
  assert(out.num_pages() == num_pages_);
  assert(first <= num_pages_ && count <= num_pages_ - first);
  if (count == 0) return;
  const uint64_t last = first + count;
  const uint64_t wf = first / 64, wl = (last - 1) / 64;
  uint64_t* out_words = out.words().data();
  if (wf == wl) {
    TakeBits(wf, WordMask(first % 64, (last - 1) % 64 + 1), out_words);
    return;
  }
  TakeBits(wf, WordMask(first % 64, 64), out_words);
  for (uint64_t i = wf + 1; i < wl; ++i) TakeBits(i, kAllOnes, out_words);
  TakeBits(wl, WordMask(0, (last - 1) % 64 + 1), out_words);
}

}  // namespace converge
