#include "iommu/iommufd_source.h"

#include <algorithm>
#include <bit>
#include <string>

#include "iommu/uapi_compat.h"

namespace converge {

IommufdSource::IommufdSource(Kernel& kernel, int iommufd, uint32_t hwpt_id,
                             Options options)
    : IovaDirtySource(options.iova_table),
      kernel_(kernel),
      fd_(iommufd),
      hwpt_id_(hwpt_id),
      options_(std::move(options)) {}

Result<bool> IommufdSource::SupportsDirtyTracking(Kernel& kernel, int iommufd,
                                                  uint32_t dev_id) {
  iommu_hw_info info{};
  info.size = sizeof info;
  info.dev_id = dev_id;
  CONVERGE_RETURN_IF_ERROR(kernel.Ioctl(iommufd, IOMMU_GET_HW_INFO, &info));
  return (info.out_capabilities & IOMMU_HW_CAP_DIRTY_TRACKING) != 0;
}

Result<uint32_t> IommufdSource::AllocDirtyHwpt(Kernel& kernel, int iommufd,
                                               uint32_t dev_id,
                                               uint32_t ioas_id) {
  iommu_hwpt_alloc cmd{};
  cmd.size = sizeof cmd;
  cmd.flags = IOMMU_HWPT_ALLOC_DIRTY_TRACKING;
  cmd.dev_id = dev_id;
  cmd.pt_id = ioas_id;
  CONVERGE_RETURN_IF_ERROR(kernel.Ioctl(iommufd, IOMMU_HWPT_ALLOC, &cmd));
  return cmd.out_hwpt_id;
}

Status IommufdSource::SetTracking(bool enable) {
  iommu_hwpt_set_dirty_tracking cmd{};
  cmd.size = sizeof cmd;
  cmd.flags = enable ? IOMMU_HWPT_DIRTY_TRACKING_ENABLE : 0;
  cmd.hwpt_id = hwpt_id_;
  return kernel_.Ioctl(fd_, IOMMU_HWPT_SET_DIRTY_TRACKING, &cmd).status();
}

Status IommufdSource::StartTracking(std::span<const IovaSpan> /*spans*/) {
  const uint64_t page = options_.page_bytes;
  const uint64_t align = std::max(page, options_.iova_alignment_bytes);
  if (!std::has_single_bit(page) || page < 4096 ||
      !std::has_single_bit(options_.iova_alignment_bytes)) {
    return InvalidArgumentError(
        "iommufd: page size and IOAS alignment must be powers of two, the "
        "page size >= 4096");
  }
  if (options_.max_bytes_per_call < align) {
    return InvalidArgumentError("iommufd: max_bytes_per_call below one page");
  }
  SetGeometry(page, align, options_.max_bytes_per_call);
  return SetTracking(true);
}

Status IommufdSource::StopTracking() { return SetTracking(false); }

Status IommufdSource::ReadLog(const IovaSpan& span, uint32_t read_flags,
                              std::span<uint64_t> words) {
  iommu_hwpt_get_dirty_bitmap cmd{};
  cmd.size = sizeof cmd;
  cmd.hwpt_id = hwpt_id_;
  cmd.flags = (read_flags & kNoClear) != 0
                  ? uint32_t{IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR}
                  : 0;
  cmd.iova = span.iova;
  cmd.length = span.bytes;
  cmd.page_size = log_page_bytes();
  cmd.data = reinterpret_cast<uintptr_t>(words.data());
  return kernel_.Ioctl(fd_, IOMMU_HWPT_GET_DIRTY_BITMAP, &cmd).status();
}

}  // namespace converge
