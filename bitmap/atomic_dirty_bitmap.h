// AtomicDirtyBitmap: a dirty bitmap that many threads mark concurrently
// (emulated devices doing DMA, a VMM's own writes to guest memory) while one
// thread harvests it into a DirtyBitmap once per pre-copy iteration.
//
// Harvesting moves each word out by atomic exchange, so a bit set
// concurrently with a harvest lands either in this harvest or stays for the
// next one: no bit is ever lost, and none is reported that was never set.
//
// Memory ordering: Set/SetRange are release operations and harvests acquire
// each word they take, so a producer that writes a page and THEN marks it
// guarantees the harvester (and whoever it hands the page to) sees the
// write. Marking before writing loses nothing only if the producer marks
// again after the write.
//
// Thread-safety: Set, SetRange and Test from any number of threads; the
// harvests from any thread, concurrently with producers (two concurrent
// harvests are safe too but split the bits between them). Same layout as
// DirtyBitmap: page i is bit i % 64 of word i / 64.

#ifndef CONVERGE_BITMAP_ATOMIC_DIRTY_BITMAP_H_
#define CONVERGE_BITMAP_ATOMIC_DIRTY_BITMAP_H_

#include <atomic>
#include <cassert>
#include <cstdint>
#include <memory>

#include "bitmap/dirty_bitmap.h"

namespace converge {

class AtomicDirtyBitmap {
 public:
  explicit AtomicDirtyBitmap(uint64_t num_pages);  // all clean
  AtomicDirtyBitmap(const AtomicDirtyBitmap&) = delete;
  AtomicDirtyBitmap& operator=(const AtomicDirtyBitmap&) = delete;

  uint64_t num_pages() const { return num_pages_; }

  // Marks a page dirty. Lock-free: one fetch_or, release (orders the
  // caller's earlier writes, typically to the page itself, before the bit).
  // REQUIRES: page < num_pages().
  void Set(uint64_t page) {
    assert(page < num_pages_);
    words_[page >> 6].fetch_or(uint64_t{1} << (page & 63),
                               std::memory_order_release);
  }

  // Marks pages [first, first + count) dirty: a release fetch_or on each
  // partial word and a release store on each whole word. Not one atomic
  // step: a concurrent harvest may take part of the range and leave the
  // rest for the next one.
  // REQUIRES: first + count <= num_pages().
  void SetRange(uint64_t first, uint64_t count);

  // True if the page is dirty now. Acquire: pairs with the Set that marked
  // it. REQUIRES: page < num_pages().
  bool Test(uint64_t page) const {
    assert(page < num_pages_);
    return (words_[page >> 6].load(std::memory_order_acquire) >>
            (page & 63)) & 1;
  }

  // Dirty pages now (a snapshot that concurrent producers may outdate).
  uint64_t Count() const;

  // out |= this, and clears this: each non-zero word is taken by atomic
  // exchange with 0 (acquire); words that load as 0 are skipped without a
  // write. REQUIRES: out.num_pages() == num_pages().
  void HarvestInto(DirtyBitmap& out);

  // The same for pages [first, first + count) only; the partial words at
  // the ends are taken with fetch_and, so bits outside the range stay.
  // REQUIRES: out.num_pages() == num_pages(), first + count <= num_pages().
  void HarvestRangeInto(uint64_t first, uint64_t count, DirtyBitmap& out);

 private:
  // Moves the bits of word i under mask into out_words[i].
  void TakeBits(uint64_t i, uint64_t mask, uint64_t* out_words);

  uint64_t num_pages_;
  uint64_t num_words_;
  std::unique_ptr<std::atomic<uint64_t>[]> words_;
};

}  // namespace converge

#endif  // CONVERGE_BITMAP_ATOMIC_DIRTY_BITMAP_H_
