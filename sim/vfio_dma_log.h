// DmaLog: the dirty-page tracker inside an emulated VFIO device (device DMA
// logging, VFIO_DEVICE_FEATURE_DMA_LOGGING_START/STOP/REPORT), with the
// argument checks of the kernel core (drivers/vfio/vfio_main.c) and the
// behaviour of a hardware tracker (drivers/vfio/pci/mlx5): one tracking
// session at a time, a tracked page size rounded to what the hardware
// supports, reports that read and clear.
//
// Dirty pages are kept sparsely (a map of 64-page words), so tracking a
// TiB of IOVA costs memory only for what the device actually wrote.
//
// Thread-safety: not thread-safe; the owning device serialises calls.

#ifndef CONVERGE_SIM_VFIO_DMA_LOG_H_
#define CONVERGE_SIM_VFIO_DMA_LOG_H_

#include <linux/vfio.h>

#include <cstdint>
#include <map>
#include <vector>

#include "base/status.h"

namespace converge::sim {

class DmaLog {
 public:
  // max_ranges: most ranges one START accepts (the kernel's limit is 256).
  // page_size_bitmap: tracked page sizes the hardware supports (bit n set =
  // 2^n bytes). REQUIRES: 0 < max_ranges; page_size_bitmap has a bit >= 4K.
  DmaLog(uint32_t max_ranges, uint64_t page_size_bitmap);

  // DMA_LOGGING_START. ranges holds control.num_ranges entries read from
  // user memory. On success control.page_size is rewritten to the tracked
  // page size. Errors (errno): EINVAL (no ranges, bad page size, unaligned,
  // empty or overlapping range, already started), E2BIG (too many ranges),
  // EOVERFLOW (iova + length wraps).
  Status Start(vfio_device_feature_dma_logging_control& control,
               const vfio_device_feature_dma_logging_range* ranges);
  // DMA_LOGGING_STOP: forgets the ranges and the log. Stopping a log that
  // is not started succeeds.
  void Stop();
  // DMA_LOGGING_REPORT: ORs the dirty pages of [iova, iova + length) into
  // the user bitmap at report.page_size and clears them from the log.
  // Errors: EINVAL (not started, page size not a power of two >= 4K,
  // unaligned or empty range, range outside the started ranges), EOVERFLOW,
  // EIO (tracker failed; the log is lost until the next START).
  Status Report(const vfio_device_feature_dma_logging_report& report);

  // The device wrote [iova, iova + length_bytes): marks the tracked pages
  // that intersect a started range.
  void Record(uint64_t iova, uint64_t length_bytes);

  // The next Report() fails with sys_errno and the tracker enters its
  // error state: the log is lost and every later Report() fails with EIO
  // until Stop() and a new Start().
  void InjectReportError(int sys_errno) { inject_report_errno_ = sys_errno; }

  bool active() const { return active_; }
  // Tracked page size in bytes; 0 when not started.
  uint64_t page_size() const { return active_ ? page_size_ : 0; }
  // Dirty tracked pages currently in the log.
  uint64_t dirty_pages() const;

 private:
  struct Range {
    uint64_t iova;
    uint64_t end;  // exclusive
  };

  uint64_t TrackedPageSize(uint64_t hint) const;
  bool Covered(uint64_t iova, uint64_t end) const;
  void SetTracked(uint64_t first_page, uint64_t last_page);

  const uint32_t max_ranges_;
  const uint64_t page_size_bitmap_;
  bool active_ = false;
  bool failed_ = false;
  uint64_t page_size_ = 0;
  int inject_report_errno_ = 0;
  std::vector<Range> ranges_;  // sorted by iova, disjoint
  // Tracked page p is bit p % 64 of words_[p / 64].
  std::map<uint64_t, uint64_t> words_;
};

}  // namespace converge::sim

#endif  // CONVERGE_SIM_VFIO_DMA_LOG_H_
