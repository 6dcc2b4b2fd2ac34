#include "sim/vfio_dma_log.h"

#include <algorithm>
#include <bit>
#include <cassert>
#include <cerrno>
#include <string>

namespace converge::sim {
namespace {

constexpr uint64_t kMinReportPageBytes = 4096;

bool IsPowerOfTwo(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

std::string Hex(uint64_t v) {
  char buf[24];
  snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

DmaLog::DmaLog(uint32_t max_ranges, uint64_t page_size_bitmap)
    : max_ranges_(max_ranges), page_size_bitmap_(page_size_bitmap) {
  assert(max_ranges_ > 0);
  assert((page_size_bitmap_ & ~(kMinReportPageBytes - 1)) != 0);
}

uint64_t DmaLog::TrackedPageSize(uint64_t hint) const {
  uint64_t supported = page_size_bitmap_ & ~(kMinReportPageBytes - 1);
  uint64_t at_least_hint = supported & ~(hint - 1);
  if (at_least_hint != 0) return at_least_hint & (~at_least_hint + 1);
  return uint64_t{1} << (63 - std::countl_zero(supported));
}

Status DmaLog::Start(vfio_device_feature_dma_logging_control& control,
                     const vfio_device_feature_dma_logging_range* ranges) {
  const std::string what = "DMA_LOGGING_START";
  if (control.num_ranges == 0) {
    return ErrnoStatus(EINVAL, what + ": num_ranges is 0");
  }
  if (control.num_ranges > max_ranges_) {
    return ErrnoStatus(E2BIG, what + ": " + std::to_string(control.num_ranges) +
                                  " ranges, the device takes at most " +
                                  std::to_string(max_ranges_));
  }
  if (!IsPowerOfTwo(control.page_size)) {
    return ErrnoStatus(EINVAL, what + ": page_size " +
                                   std::to_string(control.page_size) +
                                   " is not a power of two");
  }
  std::vector<Range> sorted;
  sorted.reserve(control.num_ranges);
  for (uint32_t i = 0; i < control.num_ranges; ++i) {
    const auto& r = ranges[i];
    std::string which = what + ": range " + std::to_string(i) + " [" +
                        Hex(r.iova) + " +" + Hex(r.length) + ")";
    if (r.iova % control.page_size != 0 || r.length % control.page_size != 0) {
      return ErrnoStatus(EINVAL, which + " not aligned to page_size " +
                                     std::to_string(control.page_size));
    }
    if (r.length == 0) return ErrnoStatus(EINVAL, which + " is empty");
    uint64_t end;
    if (__builtin_add_overflow(r.iova, r.length, &end)) {
      return ErrnoStatus(EOVERFLOW, which + " wraps around");
    }
    sorted.push_back(Range{r.iova, end});
  }
  std::sort(sorted.begin(), sorted.end(),
            [](const Range& a, const Range& b) { return a.iova < b.iova; });
  for (size_t i = 1; i < sorted.size(); ++i) {
    if (sorted[i].iova < sorted[i - 1].end) {
      return ErrnoStatus(EINVAL, what + ": ranges at " +
                                     Hex(sorted[i - 1].iova) + " and " +
                                     Hex(sorted[i].iova) + " overlap");
    }
  }
  if (active_) {
    return ErrnoStatus(EINVAL, what + ": logging already started");
  }
  active_ = true;
  failed_ = false;
  page_size_ = TrackedPageSize(control.page_size);
  ranges_ = std::move(sorted);
  words_.clear();
  control.page_size = page_size_;
  return OkStatus();
}

void DmaLog::Stop() {
  active_ = false;
  failed_ = false;
  page_size_ = 0;
  ranges_.clear();
  words_.clear();
}

bool DmaLog::Covered(uint64_t iova, uint64_t end) const {
  for (const Range& r : ranges_) {
    if (r.end <= iova) continue;
    if (r.iova > iova) return false;
    iova = r.end;
    if (iova >= end) return true;
  }
  return false;
}

void DmaLog::SetTracked(uint64_t first_page, uint64_t last_page) {
  uint64_t page = first_page;
  while (page <= last_page) {
    uint64_t word = page / 64;
    uint64_t bit = page % 64;
    uint64_t n = std::min<uint64_t>(64 - bit, last_page - page + 1);
    uint64_t mask = (n == 64 ? ~uint64_t{0} : ((uint64_t{1} << n) - 1)) << bit;
    words_[word] |= mask;
    page += n;
  }
}

void DmaLog::Record(uint64_t iova, uint64_t length_bytes) {
  if (!active_ || failed_ || length_bytes == 0) return;
  uint64_t end = iova + length_bytes < iova ? ~uint64_t{0} : iova + length_bytes;
  for (const Range& r : ranges_) {
    uint64_t lo = std::max(iova, r.iova);
    uint64_t hi = std::min(end, r.end);
    if (lo >= hi) continue;
    SetTracked(lo / page_size_, (hi - 1) / page_size_);
  }
}

Status DmaLog::Report(const vfio_device_feature_dma_logging_report& report) {
  const std::string what = "DMA_LOGGING_REPORT [" + Hex(report.iova) + " +" +
                           Hex(report.length) + ")";
  if (report.page_size < kMinReportPageBytes ||
      !IsPowerOfTwo(report.page_size)) {
    return ErrnoStatus(EINVAL, what + ": page_size " +
                                   std::to_string(report.page_size) +
                                   " is not a power of two >= 4096");
  }
  uint64_t end;
  if (__builtin_add_overflow(report.iova, report.length, &end)) {
    return ErrnoStatus(EOVERFLOW, what + " wraps around");
  }
  if (report.length == 0 || report.iova % report.page_size != 0 ||
      report.length % report.page_size != 0) {
    return ErrnoStatus(EINVAL, what + ": empty or not aligned to page_size " +
                                   std::to_string(report.page_size));
  }
  if (!active_) return ErrnoStatus(EINVAL, what + ": logging not started");
  if (inject_report_errno_ != 0) {
    int err = inject_report_errno_;
    inject_report_errno_ = 0;
    failed_ = true;
    words_.clear();
    return ErrnoStatus(err, what + ": device tracker failed, log lost");
  }
  if (failed_) {
    return ErrnoStatus(EIO, what + ": device tracker in error state");
  }
  if (!Covered(report.iova, end)) {
    return ErrnoStatus(EINVAL, what + " is outside the started ranges");
  }
  auto* bitmap = reinterpret_cast<uint64_t*>(report.bitmap);
  const uint64_t first = report.iova / page_size_;
  const uint64_t last = (end - 1) / page_size_;
  for (auto it = words_.lower_bound(first / 64);
       it != words_.end() && it->first <= last / 64;) {
    uint64_t bits = it->second;
    uint64_t cleared = 0;
    while (bits != 0) {
      uint64_t bit = static_cast<uint64_t>(std::countr_zero(bits));
      bits &= bits - 1;
      uint64_t page = it->first * 64 + bit;
      if (page < first || page > last) continue;
      uint64_t lo = std::max<uint64_t>(page * page_size_, report.iova);
      uint64_t hi = std::min<uint64_t>((page + 1) * page_size_, end);
      for (uint64_t r = (lo - report.iova) / report.page_size;
           r <= (hi - 1 - report.iova) / report.page_size; ++r) {
        bitmap[r / 64] |= uint64_t{1} << (r % 64);
      }
      // A tracked page only partly inside the range stays dirty, so the
      // rest of it is still reported by the next call that covers it.
      if (page * page_size_ >= report.iova && (page + 1) * page_size_ <= end) {
        cleared |= uint64_t{1} << bit;
      }
    }
    it->second &= ~cleared;
    it = it->second == 0 ? words_.erase(it) : std::next(it);
  }
  return OkStatus();
}

uint64_t DmaLog::dirty_pages() const {
  uint64_t n = 0;
  for (const auto& [word, bits] : words_) n += std::popcount(bits);
  return n;
}

}  // namespace converge::sim
