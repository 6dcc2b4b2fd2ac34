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

namespace converge {

// Pages [first, first + count).
struct PageRun {
  uint64_t first = 0;
  uint64_t count = 0;
  friend bool operator==(const PageRun&, const PageRun&) = default;
};

class DirtyBitmap {
 public:
  explicit DirtyBitmap(uint64_t num_pages = 0);  // all clean

  uint64_t num_pages() const { return num_pages_; }
  uint64_t num_words() const { return words_.size(); }
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

  // Dirty pages in the whole bitmap / in [first, first + count).
  uint64_t Count() const;
  uint64_t CountRange(uint64_t first, uint64_t count) const;

  // this |= other. REQUIRES: other.num_pages() == num_pages().
  void MergeFrom(const DirtyBitmap& other);

  // ORs a kernel-layout bitmap whose bit 0 is page first_page (any
  // alignment) and which covers num_bits pages (default: every bit of
  // kernel_words). A SET bit that would land at or past num_pages() is an
  // error and nothing is merged; zero padding past the end is normal.
  Status MergeWords(std::span<const uint64_t> kernel_words,
                    uint64_t first_page);

  // Maximal runs of dirty pages, ascending.
  std::vector<PageRun> Runs() const;

  // Calls fn(PageRun) for each maximal run of dirty pages, ascending. Skips
  // clean and all-dirty words in bulk; finds run edges with count-trailing-
  // zeros.
  template <typename Fn>
  void ForEachRun(Fn&& fn) const;

  friend bool operator==(const DirtyBitmap& a, const DirtyBitmap& b) {
    return a.num_pages_ == b.num_pages_ && a.words_ == b.words_;
  }

 private:
  // Clears the bits past num_pages_ in the last word.
  void TrimTail();

  uint64_t num_pages_ = 0;
  std::vector<uint64_t> words_;
};

template <typename Fn>
void DirtyBitmap::ForEachRun(Fn&& fn) const {
  const uint64_t* w = words_.data();
  const uint64_t n = words_.size();
  if (n == 0) return;
  uint64_t i = 0;
  uint64_t word = w[0];  // the bits of word i not yet consumed
  for (;;) {
    while (word == 0) {  // clean words in bulk
      if (++i == n) return;
      word = w[i];
    }
    const uint64_t start = i * 64 + static_cast<uint64_t>(std::countr_zero(word));
    // The first clean bit at or after start; all-dirty words in bulk.
    uint64_t clean = ~word & (~uint64_t{0} << (start & 63));
    while (clean == 0) {
      if (++i == n) {  // the run reaches the end (the tail bits are zero,
        fn(PageRun{start, num_pages_ - start});  // so only when it is full)
        return;
      }
      clean = ~w[i];
    }
    const uint64_t end_bit = static_cast<uint64_t>(std::countr_zero(clean));
    fn(PageRun{start, i * 64 + end_bit - start});
    word = w[i] & (~uint64_t{0} << end_bit);  // bit end_bit is clean
  }
}

}  // namespace converge

#endif  // CONVERGE_BITMAP_DIRTY_BITMAP_H_
