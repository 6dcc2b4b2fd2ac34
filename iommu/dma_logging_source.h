// DmaLoggingSource: a VFIO device's own DMA dirty log (device features
// DMA_LOGGING_START / STOP / REPORT, shared/uapi.md section 2).
//
// Start() collapses the tracked IOVA ranges to at most max_ranges (the
// kernel's limit is 256; see CollapseRanges) and starts logging with the
// RAM page size as the page-size hint; the driver may choose another page
// size, which it writes back and which reports then use (rescaled into the
// RAM bitmap). Harvests REPORT in windows of at most max_bytes_per_report.
// A REPORT error means the device's log is lost: the window is marked
// dirty, every other tracked page is marked pending, the error is recorded
// and tracking is restarted (STOP + START, counted in stats().restarts); a
// failed restart is part of the returned error, and the next harvest tries
// again.
//
// Thread-safety: one thread at a time (DirtySource).

#ifndef CONVERGE_IOMMU_DMA_LOGGING_SOURCE_H_
#define CONVERGE_IOMMU_DMA_LOGGING_SOURCE_H_

#include <cstdint>
#include <string_view>
#include <vector>

#include "iommu/iova_dirty_source.h"
#include "iommu/kernel.h"

namespace converge {

class DmaLoggingSource final : public IovaDirtySource {
 public:
  struct Options {
    // GPA -> IOVA (identity by default).
    IovaTable iova_table;
    // Most ranges one START may carry (PAGE_SIZE / 16 in the kernel).
    uint32_t max_ranges = 256;
    // Page-size hint for START; 0 = the RAM page size.
    uint64_t page_size_hint_bytes = 0;
    // Most IOVA bytes per REPORT; bounds the bitmap this source allocates
    // (2 MiB at 64 GiB of 4 KiB pages).
    uint64_t max_bytes_per_report = uint64_t{64} << 30;
  };

  // device_fd: an open VFIO device whose driver supports DMA logging; not
  // owned.
  DmaLoggingSource(Kernel& kernel, int device_fd, Options options);

  std::string_view name() const override { return "dma-logging"; }

  // The ranges the last START carried (after collapsing).
  const std::vector<IovaSpan>& started_ranges() const { return ranges_; }

 protected:
  Status StartTracking(std::span<const IovaSpan> spans) override;
  Status StopTracking() override;
  Status ReadLog(const IovaSpan& span, uint32_t read_flags,
                 std::span<uint64_t> words) override;
  Status AfterReadError() override;

 private:
  // DMA_LOGGING_START over ranges_; sets the geometry from the page size
  // the driver writes back.
  Status StartLogging();

  Kernel& kernel_;
  const int fd_;
  const Options options_;
  std::vector<IovaSpan> ranges_;
};

}  // namespace converge

#endif  // CONVERGE_IOMMU_DMA_LOGGING_SOURCE_H_
