// IommufdSource: dirty pages of an iommufd hardware page table (HWPT),
// shared/uapi.md section 4.
//
// Start() enables dirty tracking on the HWPT (IOMMU_HWPT_SET_DIRTY_TRACKING,
// which clears every bit); harvests issue IOMMU_HWPT_GET_DIRTY_BITMAP in
// windows of at most max_bytes_per_call, aligned to the page size and the
// IOAS alignment; Stop() disables tracking. HarvestNoClear() reads without
// clearing (IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR), for the final read of a
// range just before it is unmapped.
//
// The static helpers are the other two calls a VMM needs to set this up:
// whether the device's IOMMU can track dirty pages, and allocating a HWPT
// with dirty tracking.
//
// Thread-safety: one thread at a time (DirtySource).

#ifndef CONVERGE_IOMMU_IOMMUFD_SOURCE_H_
#define CONVERGE_IOMMU_IOMMUFD_SOURCE_H_

#include <cstdint>
#include <string_view>

#include "iommu/iova_dirty_source.h"
#include "iommu/kernel.h"

namespace converge {

class IommufdSource final : public IovaDirtySource {
 public:
  struct Options {
    // GPA -> IOVA (identity by default).
    IovaTable iova_table;
    // Bitmap page size to ask for; a power of two >= 4096.
    uint64_t page_bytes = 4096;
    // The IOAS's IOVA alignment; windows are widened to it.
    uint64_t iova_alignment_bytes = 4096;
    // Most IOVA bytes per call. The kernel pins the user bitmap 2 MiB at a
    // time (64 GiB of IOVA at 4 KiB pages); larger calls only cost more
    // bitmap memory here, smaller ones more calls.
    uint64_t max_bytes_per_call = uint64_t{64} << 30;
  };

  // iommufd: an open /dev/iommu; hwpt_id: a HWPT allocated with
  // IOMMU_HWPT_ALLOC_DIRTY_TRACKING. Neither is owned.
  IommufdSource(Kernel& kernel, int iommufd, uint32_t hwpt_id,
                Options options);

  std::string_view name() const override { return "iommufd"; }

  // Harvest() without clearing the kernel's bits.
  Status HarvestNoClear(uint64_t gpa, uint64_t num_pages, DirtyBitmap& out,
                        uint64_t out_first_page) {
    return HarvestWithFlags(gpa, num_pages, out, out_first_page, kNoClear);
  }

  // IOMMU_GET_HW_INFO: whether dev_id's IOMMU reports
  // IOMMU_HW_CAP_DIRTY_TRACKING.
  [[nodiscard]] static Result<bool> SupportsDirtyTracking(Kernel& kernel,
                                                          int iommufd,
                                                          uint32_t dev_id);
  // IOMMU_HWPT_ALLOC with IOMMU_HWPT_ALLOC_DIRTY_TRACKING over ioas_id;
  // returns the HWPT id (NotSupported if the IOMMU cannot track).
  [[nodiscard]] static Result<uint32_t> AllocDirtyHwpt(Kernel& kernel,
                                                       int iommufd,
                                                       uint32_t dev_id,
                                                       uint32_t ioas_id);

 protected:
  Status StartTracking(std::span<const IovaSpan> spans) override;
  Status StopTracking() override;
  Status ReadLog(const IovaSpan& span, uint32_t read_flags,
                 std::span<uint64_t> words) override;

 private:
  static constexpr uint32_t kNoClear = 1;

  Status SetTracking(bool enable);

  Kernel& kernel_;
  const int fd_;
  const uint32_t hwpt_id_;
  const Options options_;
};

}  // namespace converge

#endif  // CONVERGE_IOMMU_IOMMUFD_SOURCE_H_
