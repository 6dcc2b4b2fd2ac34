// PageRun: a run of consecutive pages, the unit dirty bitmaps are walked in.

#ifndef CONVERGE_BITMAP_PAGE_RUN_H_
#define CONVERGE_BITMAP_PAGE_RUN_H_

#include <cstdint>

namespace converge {

// Pages [first, first + count).
struct PageRun {
  uint64_t first = 0;
  uint64_t count = 0;
  friend bool operator==(const PageRun&, const PageRun&) = default;
};

}  // namespace converge

#endif  // CONVERGE_BITMAP_PAGE_RUN_H_
