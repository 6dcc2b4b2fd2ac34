// DirtyBitmap: one bit per guest page, in the kernel's layout (page i is bit
// i % 64 of word i / 64), so kernel dirty bitmaps merge word for word.
//
// Bits past num_pages() in the last word are always zero.
//
// Thread-safety: none; a DirtyBitmap is owned by one thread at a time. For
// concurrent producers see AtomicDirtyBitmap.

#ifndef CONVERGE_BITMAP_DIRTY_BITMAP_H_
#define CONVERGE_BITMAP_DIRTY_BITMAP_H_

#include <bit>
#include <cassert>
#include <cstdint>
#include <span>
#include <vector>

#include "base/status.h"
#include "bitmap/page_run.h"
#include "bitmap/word_ops.h"

namespace converge {

class DirtyBitmap {
 public:
  explicit DirtyBitmap(uint64_t num_pages = 0);  // all clean

  uint64_t num_pages() const { return num_pages_; }
  uint64_t num_words() const { return words_.size(); }
  // The words in kernel layout. A caller writing through the mutable span
  // must leave the bits past num_pages() in the last word zero.
  std::span<uint64_t> words() { return words_; }
  std::span<const uint64_t> words() const { return words_; }

  // REQUIRES: page < num_pages().
  void Set(uint64_t page) {
    assert(page < num_pages_);
    words_[page >> 6] |= uint64_t{1} << (page & 63);
  }
  // REQUIRES: page < num_pages().
  bool Test(uint64_t page) const {
    assert(page < num_pages_);
    return (words_[page >> 6] >> (page & 63)) & 1;
  }

  // REQUIRES: first + count <= num_pages().
  void SetRange(uint64_t first, uint64_t count);
  void ClearRange(uint64_t first, uint64_t count);
  void ClearAll();

  // Dirty pages in the whole bitmap / in [first, first + count). Count()
  // of a large bitmap runs on TBB worker threads.
  uint64_t Count() const;
  // REQUIRES: first + count <= num_pages().
  uint64_t CountRange(uint64_t first, uint64_t count) const;
  // True if any page is dirty.
  bool Any() const;
  // The first dirty page at or after `from`, or num_pages() if none.
  // REQUIRES: from <= num_pages().
  uint64_t FindNextDirty(uint64_t from) const;

  // this |= other; a large bitmap merges on TBB worker threads.
  // REQUIRES: other.num_pages() == num_pages().
  void MergeFrom(const DirtyBitmap& other);
  // this &= ~other: clears every page dirty in other.
  // REQUIRES: other.num_pages() == num_pages().
  void Subtract(const DirtyBitmap& other);

  // ORs a kernel-layout bitmap whose bit 0 is page first_page (any
  // alignment) and which covers every bit of kernel_words. A SET bit that
  // would land at or past num_pages() is an OutOfRange error and nothing is
  // merged; zero padding past the end is normal.
  Status MergeWords(std::span<const uint64_t> kernel_words,
                    uint64_t first_page);
  // The same for a kernel bitmap that covers only its first num_bits bits:
  // bits at or past num_bits in kernel_words are ignored, whatever they hold.
  // REQUIRES: num_bits <= 64 * kernel_words.size().
  Status MergeWords(std::span<const uint64_t> kernel_words,
                    uint64_t first_page, uint64_t num_bits);

  // Maximal runs of dirty pages, ascending.
  std::vector<PageRun> Runs() const;

  // Calls fn(PageRun) for each maximal run of dirty pages, ascending. Skips
  // clean and all-dirty words in bulk; finds run edges with count-trailing-
  // zeros.
  template <typename Fn>
  void ForEachRun(Fn&& fn) const;

  // Calls fn(PageRun) for each maximal run of dirty pages within
  // [first, first + count), clipped to it, ascending.
  // REQUIRES: first + count <= num_pages().
  template <typename Fn>
  void ForEachRunInRange(uint64_t first, uint64_t count, Fn&& fn) const;

  friend bool operator==(const DirtyBitmap& a, const DirtyBitmap& b) {
    return a.num_pages_ == b.num_pages_ && a.words_ == b.words_;
  }

 private:
  uint64_t num_pages_ = 0;
  std::vector<uint64_t> words_;
};

template <typename Fn>
void DirtyBitmap::ForEachRun(Fn&& fn) const {
  // The tail bits are zero, so a run reaching the last word's end reaches
  // num_pages() exactly.
  word_ops::ForEachRunInWords(words_, 0, fn);
}

template <typename Fn>
void DirtyBitmap::ForEachRunInRange(uint64_t first, uint64_t count,
                                    Fn&& fn) const {
  assert(first <= num_pages_ && count <= num_pages_ - first);
  if (count == 0) return;
  const uint64_t last = first + count;  // exclusive
  const uint64_t wf = first / 64, wl = (last - 1) / 64;
  // Runs are found in whole words; only the first and last word can hold
  // runs that need clipping or lie outside the range.
  word_ops::ForEachRunInWords(
      std::span<const uint64_t>(words_).subspan(wf, wl - wf + 1), wf * 64,
      [&](PageRun r) {
        const uint64_t lo = r.first < first ? first : r.first;
        const uint64_t end = r.first + r.count;
        const uint64_t hi = end > last ? last : end;
        if (lo < hi) fn(PageRun{lo, hi - lo});
      });
}

}  // namespace converge

#endif  // CONVERGE_BITMAP_DIRTY_BITMAP_H_
