// Rescale: moving dirty bits between page sizes. An IOMMU reports dirty
// IOVA at its page size (often 2 MiB) while the RAM bitmap is at 4 KiB; a
// coarse dirty bit dirties every fine page it covers, and fine bits OR into
// the coarse page that holds them.
//
// Page sizes are powers of two. Offsets are in bytes of the destination's
// address space, in which page j of a DirtyBitmap at dst_page_bytes covers
// bytes [j * dst_page_bytes, (j + 1) * dst_page_bytes).
//
// Thread-safety: the functions touch only their arguments; the caller owns
// dst for the duration of the call.

#ifndef CONVERGE_BITMAP_RESCALE_H_
#define CONVERGE_BITMAP_RESCALE_H_

#include <cstdint>
#include <span>

#include "base/status.h"
#include "bitmap/dirty_bitmap.h"

namespace converge {

// ORs a kernel-layout bitmap into dst without an intermediate copy: bit i
// of src_words marks the src_page_bytes bytes at offset_bytes + i *
// src_page_bytes as dirty, and every dst page overlapping them becomes
// dirty. A set bit whose bytes start at or past dst's end is an OutOfRange
// error and nothing is merged; one that straddles the end dirties the pages
// inside. Errors (InvalidArgument): a page size that is not a power of two;
// offset_bytes not a multiple of the smaller page size.
// REQUIRES: src_words does not alias dst.words().
Status RescaleWordsInto(std::span<const uint64_t> src_words,
                        uint64_t src_page_bytes, uint64_t offset_bytes,
                        DirtyBitmap& dst, uint64_t dst_page_bytes);

// dst |= src converted from src_page_bytes pages to dst_page_bytes pages,
// both bitmaps starting at byte 0. Errors as RescaleWordsInto.
// REQUIRES: &src != &dst.
Status RescaleInto(const DirtyBitmap& src, uint64_t src_page_bytes,
                   DirtyBitmap& dst, uint64_t dst_page_bytes);

}  // namespace converge

#endif  // CONVERGE_BITMAP_RESCALE_H_
