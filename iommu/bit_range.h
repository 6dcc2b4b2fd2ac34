// Bit-range copies between kernel-layout bitmaps (bit i is bit i % 64 of
// word i / 64) at arbitrary bit offsets: what a dirty source needs to move a
// kernel report into a RAM bitmap that does not start on the same word
// boundary.
//
// Thread-safety: pure functions on caller-owned memory.

#ifndef CONVERGE_IOMMU_BIT_RANGE_H_
#define CONVERGE_IOMMU_BIT_RANGE_H_

#include <cstdint>
#include <vector>

namespace converge {

// dst bits [dst_bit, dst_bit + num_bits) |= src bits [src_bit, src_bit +
// num_bits). Returns the number of set bits copied (the popcount of the
// source range). Word-aligned offsets skip clean stretches with the
// dispatched vector scan (bitmap/word_ops.h).
// REQUIRES: both ranges lie inside their arrays; they do not overlap.
uint64_t OrBitRange(const uint64_t* src, uint64_t src_bit, uint64_t* dst,
                    uint64_t dst_bit, uint64_t num_bits);

// Number of set bits in [first_bit, first_bit + num_bits).
uint64_t CountBitRange(const uint64_t* words, uint64_t first_bit,
                       uint64_t num_bits);

// Moves a word-aligned log into a report: dst[i] |= src[i], src[i] = 0
// for i < n. Returns the number of bits moved. Clean stretches are skipped
// by the vector scan, so a sparse log costs one read and few writes.
// REQUIRES: the arrays do not overlap.
uint64_t MoveSetWords(uint64_t* src, uint64_t* dst, uint64_t n);

// Appends to set_words the index of every non-zero word of words[0, n),
// ascending, and returns the number of bits set in them. Clean stretches
// are skipped by the dispatched vector scan, runs of set words walked
// directly.
uint64_t ListSetWords(const uint64_t* words, uint64_t n,
                      std::vector<uint64_t>& set_words);

}  // namespace converge

#endif  // CONVERGE_IOMMU_BIT_RANGE_H_
