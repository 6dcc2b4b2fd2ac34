// EmulatedIommufd: the iommufd character device ("/dev/iommu") with the
// dirty tracking of drivers/iommu/iommufd (shared/uapi.md section 4).
//
// Implemented: IOMMU_IOAS_ALLOC, IOMMU_IOAS_MAP / UNMAP, IOMMU_GET_HW_INFO,
// IOMMU_HWPT_ALLOC (DIRTY_TRACKING flag; EOPNOTSUPP when the device's IOMMU
// lacks it), IOMMU_HWPT_SET_DIRTY_TRACKING (enable clears every bit),
// IOMMU_HWPT_GET_DIRTY_BITMAP (NO_CLEAR; holes report nothing; only sets
// bits) and IOMMU_DESTROY. Every command checks its leading `size` (below
// the minimum: EINVAL; bytes past what is known must be zero: E2BIG).
// Anything else is ENOTTY.
//
// Devices are not bound through VFIO cdevs here: AddDevice() returns a
// dev_id for HWPT_ALLOC and GET_HW_INFO. Device DMA arrives through
// DmaObserver::RecordDma and dirties, in every HWPT whose tracking is on,
// the 4 KiB IOMMU pages of its IOAS that the write touches.
//
// Thread-safety: thread-safe; one mutex guards all state.

#ifndef CONVERGE_SIM_EMULATED_IOMMUFD_H_
#define CONVERGE_SIM_EMULATED_IOMMUFD_H_

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "bitmap/dirty_bitmap.h"
#include "sim/emulated_kernel.h"

namespace converge::sim {

struct EmulatedIommufdOptions {
  // iopt->iova_alignment: IOAS_MAP and GET_DIRTY_BITMAP ranges must be
  // aligned to it. A power of two >= 4096.
  uint64_t iova_alignment_bytes = 4096;
};

class EmulatedIommufd final : public EmulatedObject, public DmaObserver {
 public:
  // The IOMMU page size dirty bits are kept at.
  static constexpr uint64_t kIommuPageBytes = 4096;

  // Registers as a DMA observer of kernel until destroyed.
  EmulatedIommufd(EmulatedKernel& kernel, EmulatedIommufdOptions options);
  ~EmulatedIommufd() override;
  EmulatedIommufd(const EmulatedIommufd&) = delete;
  EmulatedIommufd& operator=(const EmulatedIommufd&) = delete;

  // Makes kernel.Open(path) return a new iommufd with these options.
  static void Register(EmulatedKernel& kernel,
                       EmulatedIommufdOptions options = {},
                       const std::string& path = "/dev/iommu");

  // A bound device; returns its dev_id. dirty_tracking: whether its IOMMU
  // reports IOMMU_HW_CAP_DIRTY_TRACKING.
  uint32_t AddDevice(bool dirty_tracking);

  Result<int> Ioctl(unsigned long request, void* arg) override;
  void RecordDma(uint64_t iova, uint64_t length_bytes) override;

 private:
  struct Area {
    uint64_t length = 0;
    uint64_t user_va = 0;
  };
  struct Ioas {
    std::map<uint64_t, Area> areas;  // by iova
  };
  struct Hwpt {
    uint32_t ioas_id = 0;
    bool dirty_capable = false;  // allocated with DIRTY_TRACKING
    bool tracking = false;
    std::map<uint64_t, DirtyBitmap> dirty;  // by area iova; 4 KiB pages
  };

  Result<int> Destroy(void* arg);
  Result<int> IoasAlloc(void* arg);
  Result<int> IoasMap(void* arg);
  Result<int> IoasUnmap(void* arg);
  Result<int> GetHwInfo(void* arg);
  Result<int> HwptAlloc(void* arg);
  Result<int> SetDirtyTracking(void* arg);
  Result<int> GetDirtyBitmap(void* arg);

  EmulatedKernel& kernel_;
  const EmulatedIommufdOptions options_;

  mutable std::mutex mu_;
  uint32_t next_id_ = 1;
  std::map<uint32_t, bool> devices_;  // dev_id -> dirty tracking capable
  std::map<uint32_t, Ioas> ioas_;
  std::map<uint32_t, Hwpt> hwpts_;
};

}  // namespace converge::sim

#endif  // CONVERGE_SIM_EMULATED_IOMMUFD_H_
