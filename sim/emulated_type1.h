// EmulatedType1Container: the VFIO type1 IOMMU container behind
// "/dev/vfio/vfio", with the dirty page tracking of
// drivers/vfio/vfio_iommu_type1.c (shared/uapi.md section 3).
//
// Implemented: VFIO_GET_API_VERSION, VFIO_CHECK_EXTENSION, VFIO_SET_IOMMU
// (TYPE1v2 only; no group is needed), VFIO_IOMMU_GET_INFO (argsz growth
// protocol; a DMA-available and a migration capability), VFIO_IOMMU_MAP_DMA,
// VFIO_IOMMU_UNMAP_DMA (whole mappings; GET_DIRTY_BITMAP and VADDR unmap
// flags are refused with EINVAL) and VFIO_IOMMU_DIRTY_PAGES START / STOP /
// GET_BITMAP with the kernel's argument checks. Anything else is ENOTTY.
//
// Device DMA arrives through DmaObserver::RecordDma (EmulatedKernel::
// NotifyDma); while tracking, it dirties the mapped IOMMU pages it touches.
// Unmapped IOVAs are ignored (a real IOMMU would fault the DMA).
//
// Thread-safety: thread-safe; one mutex guards all state.

#ifndef CONVERGE_SIM_EMULATED_TYPE1_H_
#define CONVERGE_SIM_EMULATED_TYPE1_H_

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>

#include "bitmap/dirty_bitmap.h"
#include "sim/emulated_kernel.h"

namespace converge::sim {

struct EmulatedType1Options {
  // The IOMMU's smallest page (lowest bit of pgsize_bitmap); dirty bits are
  // kept and reported at this size. 2 MiB exercises the rescale path.
  uint64_t min_page_bytes = 4096;
  // Most bytes of user bitmap per GET_BITMAP (the kernel's 256 MiB).
  uint64_t max_dirty_bitmap_bytes = uint64_t{256} << 20;
  // true: only DMA writes and pinned pages are dirty (a group that pins).
  // false: every mapped page is dirty at START and after every read (a
  // group without pinned-page scope: the perpetually dirty case).
  bool pinned_page_dirty_scope = true;
};

class EmulatedType1Container final : public EmulatedObject,
                                     public DmaObserver {
 public:
  // Registers as a DMA observer of kernel until destroyed.
  EmulatedType1Container(EmulatedKernel& kernel, EmulatedType1Options options);
  ~EmulatedType1Container() override;
  EmulatedType1Container(const EmulatedType1Container&) = delete;
  EmulatedType1Container& operator=(const EmulatedType1Container&) = delete;

  // Makes kernel.Open(path) return a new container with these options.
  static void Register(EmulatedKernel& kernel,
                       EmulatedType1Options options = {},
                       const std::string& path = "/dev/vfio/vfio");

  Result<int> Ioctl(unsigned long request, void* arg) override;
  void RecordDma(uint64_t iova, uint64_t length_bytes) override;

  // Pins [iova, iova + bytes) the way a vendor driver does: pinned pages are
  // dirty in every report while tracking.
  void Pin(uint64_t iova, uint64_t bytes);

  bool tracking() const;
  size_t num_mappings() const;

 private:
  struct Mapping {
    uint64_t bytes = 0;
    uint64_t vaddr = 0;
    DirtyBitmap dirty;   // one bit per IOMMU page while tracking
    DirtyBitmap pinned;  // empty until a page of the mapping is pinned
  };

  Result<int> GetInfo(void* arg);
  Result<int> MapDma(void* arg);
  Result<int> UnmapDma(void* arg);
  Result<int> DirtyPages(void* arg);
  Result<int> GetBitmap(void* arg, uint32_t argsz);
  // Sets m.dirty to its state right after a START or a read.
  // REQUIRES: m.dirty is clean.
  void Repopulate(Mapping& m) const;
  uint64_t PagesOf(uint64_t bytes) const { return bytes / options_.min_page_bytes; }

  EmulatedKernel& kernel_;
  const EmulatedType1Options options_;

  mutable std::mutex mu_;
  bool iommu_set_ = false;
  bool tracking_ = false;
  std::map<uint64_t, Mapping> mappings_;  // by iova
};

}  // namespace converge::sim

#endif  // CONVERGE_SIM_EMULATED_TYPE1_H_
