// CollapseRanges: fits a set of IOVA spans into at most max_spans spans by
// closing the smallest gaps between neighbours. Device DMA logging accepts
// at most 256 ranges per START (PAGE_SIZE / 16); QEMU splits guest memory
// into a 32-bit and a 64-bit range with the hole between left out. Closing
// the smallest gaps first generalizes that: the big holes stay uncovered,
// and since every gap is independent, closing the n - max smallest ones is
// exactly what merging the closest neighbours one at a time would give.
//
// The result covers every input byte; the gaps it covers only add pages
// that can never be dirtied by guest RAM DMA, so at worst they add false
// dirty bits, never lose any.
//
// Thread-safety: a pure function.

#ifndef CONVERGE_IOMMU_RANGE_COLLAPSE_H_
#define CONVERGE_IOMMU_RANGE_COLLAPSE_H_

#include <cstddef>
#include <vector>

#include "iommu/iova_table.h"

namespace converge {

// Sorted, disjoint spans covering `spans`, at most max_spans of them.
// Touching or overlapping inputs are merged first.
// REQUIRES: max_spans >= 1.
std::vector<IovaSpan> CollapseRanges(std::vector<IovaSpan> spans,
                                     size_t max_spans);

}  // namespace converge

#endif  // CONVERGE_IOMMU_RANGE_COLLAPSE_H_
