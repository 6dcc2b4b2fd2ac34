// VfioType1Source: dirty pages of a VFIO type1 IOMMU container
// (VFIO_IOMMU_DIRTY_PAGES, shared/uapi.md section 3).
//
// Start() reads the migration capability (VFIO_IOMMU_GET_INFO, growing the
// buffer as the kernel asks) for the IOMMU page size and the largest bitmap
// one call may return, then starts tracking. Harvests issue GET_BITMAP
// calls at the IOMMU page size, each at most max_dirty_bitmap_size of
// bitmap and never cutting through a DMA mapping: the caller gives the
// container's mapping list (what it passed to VFIO_IOMMU_MAP_DMA), and a
// window is widened to the mappings it touches (the extra bits are kept
// pending, see IovaDirtySource). A 2 MiB IOMMU page is rescaled into the
// RAM bitmap's 4 KiB pages.
//
// Thread-safety: one thread at a time (DirtySource).

#ifndef CONVERGE_IOMMU_VFIO_TYPE1_SOURCE_H_
#define CONVERGE_IOMMU_VFIO_TYPE1_SOURCE_H_

#include <cstdint>
#include <string_view>
#include <vector>

#include "iommu/iova_dirty_source.h"
#include "iommu/kernel.h"

namespace converge {

// What VFIO_IOMMU_GET_INFO's migration capability says.
struct Type1MigrationInfo {
  uint64_t pgsize_bitmap = 0;          // dirty page sizes supported
  uint64_t max_dirty_bitmap_bytes = 0;  // most bitmap bytes per GET_BITMAP
  uint64_t page_bytes() const { return pgsize_bitmap & (~pgsize_bitmap + 1); }
};

class VfioType1Source final : public IovaDirtySource {
 public:
  struct Options {
    // GPA -> IOVA (identity by default).
    IovaTable iova_table;
    // The container's DMA mappings. Every tracked IOVA must be mapped.
    std::vector<IovaSpan> mappings;
  };

  // container_fd: an open container with the type1 IOMMU set; not owned.
  VfioType1Source(Kernel& kernel, int container_fd, Options options);

  std::string_view name() const override { return "vfio-type1"; }

  // VFIO_IOMMU_GET_INFO: the migration capability. NotSupported when the
  // IOMMU has none (no dirty tracking).
  [[nodiscard]] static Result<Type1MigrationInfo> ReadMigrationInfo(
      Kernel& kernel, int container_fd);

  // Replaces the mapping list (after MAP_DMA / UNMAP_DMA).
  // REQUIRES: spans disjoint.
  void SetMappings(std::vector<IovaSpan> mappings);

 protected:
  Status StartTracking(std::span<const IovaSpan> spans) override;
  Status StopTracking() override;
  Status ReadLog(const IovaSpan& span, uint32_t read_flags,
                 std::span<uint64_t> words) override;
  Status PlanCalls(uint64_t lo, uint64_t hi,
                   std::vector<IovaSpan>& calls) const override;

 private:
  Status DirtyPages(uint32_t flag);
  // The mapping containing iova, or nullptr.
  const IovaSpan* MappingAt(uint64_t iova) const;

  Kernel& kernel_;
  const int fd_;
  std::vector<IovaSpan> mappings_;  // sorted by iova
};

}  // namespace converge

#endif  // CONVERGE_IOMMU_VFIO_TYPE1_SOURCE_H_
