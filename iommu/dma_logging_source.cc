#include "iommu/dma_logging_source.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <string>

#include "iommu/range_collapse.h"
#include "iommu/uapi_compat.h"

namespace converge {
namespace {

constexpr size_t kFeatureHead = sizeof(vfio_device_feature);

// A vfio_device_feature header followed by payload, 8-byte aligned.
template <typename Payload>
struct FeatureCall {
  alignas(8) unsigned char bytes[kFeatureHead + sizeof(Payload)];

  FeatureCall(uint32_t flags, const Payload& payload) {
    vfio_device_feature head{};
    head.argsz = sizeof bytes;
    head.flags = flags;
    std::memcpy(bytes, &head, kFeatureHead);
    std::memcpy(bytes + kFeatureHead, &payload, sizeof payload);
  }
  Payload payload() const {
    Payload p;
    std::memcpy(&p, bytes + kFeatureHead, sizeof p);
    return p;
  }
};

}  // namespace

DmaLoggingSource::DmaLoggingSource(Kernel& kernel, int device_fd,
                                   Options options)
    : IovaDirtySource(options.iova_table),
      kernel_(kernel),
      fd_(device_fd),
      options_(std::move(options)) {}

Status DmaLoggingSource::StartTracking(std::span<const IovaSpan> spans) {
  if (options_.max_ranges == 0) {
    return InvalidArgumentError("DMA logging: max_ranges is 0");
  }
  ranges_ = CollapseRanges(std::vector<IovaSpan>(spans.begin(), spans.end()),
                           options_.max_ranges);
  return StartLogging();
}

Status DmaLoggingSource::StartLogging() {
  std::vector<vfio_device_feature_dma_logging_range> ranges(ranges_.size());
  for (size_t i = 0; i < ranges_.size(); ++i) {
    ranges[i].iova = ranges_[i].iova;
    ranges[i].length = ranges_[i].bytes;
  }
  vfio_device_feature_dma_logging_control control{};
  control.page_size = options_.page_size_hint_bytes != 0
                          ? options_.page_size_hint_bytes
                          : ram_page_bytes();
  control.num_ranges = static_cast<uint32_t>(ranges.size());
  control.ranges = reinterpret_cast<uintptr_t>(ranges.data());
  FeatureCall<vfio_device_feature_dma_logging_control> call(
      VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
      control);
  CONVERGE_RETURN_IF_ERROR(kernel_.Ioctl(fd_, VFIO_DEVICE_FEATURE, call.bytes));
  const uint64_t page = call.payload().page_size;
  bool aligned = std::has_single_bit(page) && page >= 4096;
  for (const IovaSpan& r : ranges_) {
    aligned = aligned && r.iova % page == 0 && r.bytes % page == 0;
  }
  if (!aligned) {
    (void)StopTracking();
    return NotSupportedError("DMA logging: the driver chose page size " +
                             std::to_string(page) +
                             ", which the tracked ranges are not aligned to");
  }
  SetGeometry(page, page,
              std::max(page, options_.max_bytes_per_report & ~(page - 1)));
  return OkStatus();
}

Status DmaLoggingSource::StopTracking() {
  vfio_device_feature head{};
  head.argsz = sizeof head;
  head.flags = VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP;
  return kernel_.Ioctl(fd_, VFIO_DEVICE_FEATURE, &head).status();
}

Status DmaLoggingSource::ReadLog(const IovaSpan& span, uint32_t /*read_flags*/,
                                 std::span<uint64_t> words) {
  vfio_device_feature_dma_logging_report report{};
  report.iova = span.iova;
  report.length = span.bytes;
  report.page_size = log_page_bytes();
  report.bitmap = reinterpret_cast<uintptr_t>(words.data());
  FeatureCall<vfio_device_feature_dma_logging_report> call(
      VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT,
      report);
  return kernel_.Ioctl(fd_, VFIO_DEVICE_FEATURE, call.bytes).status();
}

Status DmaLoggingSource::AfterReadError() {
  // The device's log is gone: every page it tracked may be dirty.
  MarkAllPending();
  ++stats_.restarts;
  (void)StopTracking();  // a STOP of a dead log may fail; START decides
  return StartLogging();
}

}  // namespace converge
