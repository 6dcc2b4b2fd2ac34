#include "iommu/range_collapse.h"

#include <algorithm>
#include <cassert>

namespace converge {

std::vector<IovaSpan> CollapseRanges(std::vector<IovaSpan> spans,
                                     size_t max_spans) {
  assert(max_spans >= 1);
  std::sort(spans.begin(), spans.end(),
            [](const IovaSpan& a, const IovaSpan& b) { return a.iova < b.iova; });
  std::vector<IovaSpan> merged;
  for (const IovaSpan& s : spans) {
    if (s.bytes == 0) continue;
    if (!merged.empty() && s.iova <= merged.back().end()) {
      merged.back().bytes =
          std::max(merged.back().end(), s.end()) - merged.back().iova;
    } else {
      merged.push_back(s);
    }
  }
  if (merged.size() <= max_spans) return merged;

  // Close the (n - max) smallest gaps; gap i lies between merged[i] and
  // merged[i + 1]. Ties close the lower gap first, so the result is stable.
  std::vector<size_t> gaps(merged.size() - 1);
  for (size_t i = 0; i < gaps.size(); ++i) gaps[i] = i;
  auto gap_bytes = [&](size_t i) {
    return merged[i + 1].iova - merged[i].end();
  };
  const size_t close = merged.size() - max_spans;
  std::nth_element(gaps.begin(), gaps.begin() + static_cast<long>(close) - 1,
                   gaps.end(), [&](size_t a, size_t b) {
                     return gap_bytes(a) != gap_bytes(b)
                                ? gap_bytes(a) < gap_bytes(b)
                                : a < b;
                   });
  std::vector<bool> closed(gaps.size(), false);
  for (size_t i = 0; i < close; ++i) closed[gaps[i]] = true;

  std::vector<IovaSpan> out;
  out.reserve(max_spans);
  out.push_back(merged[0]);
  for (size_t i = 1; i < merged.size(); ++i) {
    if (closed[i - 1]) {
      out.back().bytes = merged[i].end() - out.back().iova;
    } else {
      out.push_back(merged[i]);
    }
  }
  return out;
}

}  // namespace converge
