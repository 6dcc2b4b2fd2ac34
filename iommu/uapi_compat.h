// Kernel ABI newer than the oldest headers converge builds against
// (linux-libc-dev 6.1). Each block is guarded so that newer system headers
// win, and names the kernel release it came from. static_asserts pin every
// size and offset: the kernel ABI never changes them.

#ifndef CONVERGE_IOMMU_UAPI_COMPAT_H_
#define CONVERGE_IOMMU_UAPI_COMPAT_H_

#include <linux/ioctl.h>
#include <linux/kvm.h>
#include <linux/types.h>
#include <linux/vfio.h>

#include <cstddef>

#if __has_include(<linux/iommufd.h>)
#include <linux/iommufd.h>
#endif

// ---- VFIO migration v2 additions (Linux 6.2) ----------------------------

#ifndef VFIO_MIGRATION_PRE_COPY
#define VFIO_MIGRATION_PRE_COPY (1 << 2)
#endif

// enum vfio_device_mig_state gained PRE_COPY (6) and PRE_COPY_P2P (7) in
// 6.2; 6.1's enum stops at RUNNING_P2P, so name them as constants.
namespace converge::uapi {
inline constexpr __u32 kVfioDeviceStatePreCopy = 6;
inline constexpr __u32 kVfioDeviceStatePreCopyP2p = 7;
}  // namespace converge::uapi

#ifndef VFIO_MIG_GET_PRECOPY_INFO
struct vfio_precopy_info {
  __u32 argsz;
  __u32 flags;
  __aligned_u64 initial_bytes;
  __aligned_u64 dirty_bytes;
};
#define VFIO_MIG_GET_PRECOPY_INFO _IO(VFIO_TYPE, VFIO_BASE + 21)
#endif

#ifndef VFIO_DEVICE_FEATURE_MIG_DATA_SIZE
struct vfio_device_feature_mig_data_size {
  __aligned_u64 stop_copy_length;
};
#define VFIO_DEVICE_FEATURE_MIG_DATA_SIZE 9
#endif

// ---- Linux 7.1: PRECOPY_INFO re-initialisation ---------------------------
#ifndef VFIO_PRECOPY_INFO_REINIT
#define VFIO_PRECOPY_INFO_REINIT (1 << 0)
#endif
#ifndef VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2
#define VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2 12
#endif

// Feature flag bits of struct vfio_device_feature (present since 5.18).
static_assert(VFIO_DEVICE_FEATURE_GET == (1u << 16));
static_assert(VFIO_DEVICE_FEATURE_SET == (1u << 17));
static_assert(VFIO_DEVICE_FEATURE_PROBE == (1u << 18));
static_assert(VFIO_DEVICE_FEATURE_MASK == 0xffffu);

// ---- iommufd (Linux 6.2, dirty tracking 6.7) -----------------------------

#ifndef IOMMUFD_TYPE
#define IOMMUFD_TYPE (';')
#endif

// Command numbers are fixed by the ABI; spelled out so that a partial system
// header (6.2 - 6.6, no dirty tracking) does not leave gaps.
namespace converge::uapi {
inline constexpr unsigned kIommufdCmdDestroy = 0x80;
inline constexpr unsigned kIommufdCmdIoasAlloc = 0x81;
inline constexpr unsigned kIommufdCmdIoasMap = 0x85;
inline constexpr unsigned kIommufdCmdIoasUnmap = 0x86;
inline constexpr unsigned kIommufdCmdHwptAlloc = 0x89;
inline constexpr unsigned kIommufdCmdGetHwInfo = 0x8a;
inline constexpr unsigned kIommufdCmdHwptSetDirtyTracking = 0x8b;
inline constexpr unsigned kIommufdCmdHwptGetDirtyBitmap = 0x8c;
}  // namespace converge::uapi

#ifndef IOMMU_DESTROY
struct iommu_destroy {
  __u32 size;
  __u32 id;
};
#define IOMMU_DESTROY _IO(IOMMUFD_TYPE, 0x80)
#endif

#ifndef IOMMU_IOAS_ALLOC
struct iommu_ioas_alloc {
  __u32 size;
  __u32 flags;
  __u32 out_ioas_id;
};
#define IOMMU_IOAS_ALLOC _IO(IOMMUFD_TYPE, 0x81)
#endif

#ifndef IOMMU_IOAS_MAP
enum iommufd_ioas_map_flags {
  IOMMU_IOAS_MAP_FIXED_IOVA = 1 << 0,
  IOMMU_IOAS_MAP_WRITEABLE = 1 << 1,
  IOMMU_IOAS_MAP_READABLE = 1 << 2,
};
struct iommu_ioas_map {
  __u32 size;
  __u32 flags;
  __u32 ioas_id;
  __u32 __reserved;
  __aligned_u64 user_va;
  __aligned_u64 length;
  __aligned_u64 iova;
};
#define IOMMU_IOAS_MAP _IO(IOMMUFD_TYPE, 0x85)
#endif

#ifndef IOMMU_IOAS_UNMAP
struct iommu_ioas_unmap {
  __u32 size;
  __u32 ioas_id;
  __aligned_u64 iova;
  __aligned_u64 length;
};
#define IOMMU_IOAS_UNMAP _IO(IOMMUFD_TYPE, 0x86)
#endif

// HWPT_ALLOC grew over releases (6.7: 40 bytes with data_type/data_len/
// data_uptr; 6.11 appended fault_id). The 6.7 layout is what converge sends;
// the kernel accepts any size up to its own, trailing bytes zero.
#ifndef IOMMU_HWPT_ALLOC
struct iommu_hwpt_alloc {
  __u32 size;
  __u32 flags;
  __u32 dev_id;
  __u32 pt_id;
  __u32 out_hwpt_id;
  __u32 __reserved;
  __u32 data_type;
  __u32 data_len;
  __aligned_u64 data_uptr;
};
#define IOMMU_HWPT_ALLOC _IO(IOMMUFD_TYPE, 0x89)
#endif
#ifndef IOMMU_HWPT_ALLOC_DIRTY_TRACKING
#define IOMMU_HWPT_ALLOC_DIRTY_TRACKING (1 << 1)
#endif

#ifndef IOMMU_GET_HW_INFO
struct iommu_hw_info {
  __u32 size;
  __u32 flags;
  __u32 dev_id;
  __u32 data_len;
  __aligned_u64 data_uptr;
  __u32 out_data_type;
  __u32 __reserved;
  __aligned_u64 out_capabilities;
};
#define IOMMU_GET_HW_INFO _IO(IOMMUFD_TYPE, 0x8a)
#endif
#ifndef IOMMU_HW_CAP_DIRTY_TRACKING
#define IOMMU_HW_CAP_DIRTY_TRACKING (1 << 0)
#endif

#ifndef IOMMU_HWPT_SET_DIRTY_TRACKING
#define IOMMU_HWPT_DIRTY_TRACKING_ENABLE 1
struct iommu_hwpt_set_dirty_tracking {
  __u32 size;
  __u32 flags;
  __u32 hwpt_id;
  __u32 __reserved;
};
#define IOMMU_HWPT_SET_DIRTY_TRACKING _IO(IOMMUFD_TYPE, 0x8b)
#endif

#ifndef IOMMU_HWPT_GET_DIRTY_BITMAP
#define IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR 1
struct iommu_hwpt_get_dirty_bitmap {
  __u32 size;
  __u32 hwpt_id;
  __u32 flags;
  __u32 __reserved;
  __aligned_u64 iova;
  __aligned_u64 length;
  __aligned_u64 page_size;
  __aligned_u64 data;
};
#define IOMMU_HWPT_GET_DIRTY_BITMAP _IO(IOMMUFD_TYPE, 0x8c)
#endif

// ---- KVM (Linux 6.4) ------------------------------------------------------
#ifndef KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP
#define KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP 225
#endif
#ifndef KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE
#define KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE (1 << 0)
#endif
#ifndef KVM_DIRTY_LOG_INITIALLY_SET
#define KVM_DIRTY_LOG_INITIALLY_SET (1 << 1)
#endif

// ---- Layout checks (x86_64) ------------------------------------------------
#define CONVERGE_ASSERT_LAYOUT(type, bytes) \
  static_assert(sizeof(struct type) == (bytes), #type " size")
#define CONVERGE_ASSERT_OFFSET(type, field, off) \
  static_assert(offsetof(struct type, field) == (off), #type "." #field)

CONVERGE_ASSERT_LAYOUT(vfio_device_feature, 8);
CONVERGE_ASSERT_LAYOUT(vfio_device_feature_migration, 8);
CONVERGE_ASSERT_LAYOUT(vfio_device_feature_mig_state, 8);
CONVERGE_ASSERT_OFFSET(vfio_device_feature_mig_state, data_fd, 4);
CONVERGE_ASSERT_LAYOUT(vfio_precopy_info, 24);
CONVERGE_ASSERT_OFFSET(vfio_precopy_info, initial_bytes, 8);
CONVERGE_ASSERT_OFFSET(vfio_precopy_info, dirty_bytes, 16);
CONVERGE_ASSERT_LAYOUT(vfio_device_feature_mig_data_size, 8);
CONVERGE_ASSERT_LAYOUT(vfio_device_feature_dma_logging_control, 24);
CONVERGE_ASSERT_OFFSET(vfio_device_feature_dma_logging_control, num_ranges, 8);
CONVERGE_ASSERT_OFFSET(vfio_device_feature_dma_logging_control, ranges, 16);
CONVERGE_ASSERT_LAYOUT(vfio_device_feature_dma_logging_range, 16);
CONVERGE_ASSERT_LAYOUT(vfio_device_feature_dma_logging_report, 32);
CONVERGE_ASSERT_OFFSET(vfio_device_feature_dma_logging_report, bitmap, 24);
CONVERGE_ASSERT_LAYOUT(vfio_iommu_type1_dirty_bitmap, 8);
CONVERGE_ASSERT_LAYOUT(vfio_iommu_type1_dirty_bitmap_get, 40);
CONVERGE_ASSERT_OFFSET(vfio_iommu_type1_dirty_bitmap_get, bitmap, 16);
CONVERGE_ASSERT_LAYOUT(vfio_bitmap, 24);
CONVERGE_ASSERT_LAYOUT(vfio_iommu_type1_info_cap_migration, 32);
CONVERGE_ASSERT_OFFSET(vfio_iommu_type1_info_cap_migration, pgsize_bitmap, 16);
CONVERGE_ASSERT_OFFSET(vfio_iommu_type1_info_cap_migration,
                       max_dirty_bitmap_size, 24);
CONVERGE_ASSERT_LAYOUT(iommu_destroy, 8);
CONVERGE_ASSERT_LAYOUT(iommu_ioas_alloc, 12);
CONVERGE_ASSERT_LAYOUT(iommu_ioas_map, 40);
CONVERGE_ASSERT_LAYOUT(iommu_ioas_unmap, 24);
CONVERGE_ASSERT_OFFSET(iommu_hwpt_alloc, out_hwpt_id, 16);
CONVERGE_ASSERT_OFFSET(iommu_hw_info, out_capabilities, 32);
CONVERGE_ASSERT_LAYOUT(iommu_hwpt_set_dirty_tracking, 16);
CONVERGE_ASSERT_LAYOUT(iommu_hwpt_get_dirty_bitmap, 48);
CONVERGE_ASSERT_OFFSET(iommu_hwpt_get_dirty_bitmap, iova, 16);
CONVERGE_ASSERT_OFFSET(iommu_hwpt_get_dirty_bitmap, data, 40);
CONVERGE_ASSERT_LAYOUT(kvm_dirty_log, 16);
CONVERGE_ASSERT_LAYOUT(kvm_clear_dirty_log, 24);
CONVERGE_ASSERT_OFFSET(kvm_clear_dirty_log, first_page, 8);
CONVERGE_ASSERT_LAYOUT(kvm_dirty_gfn, 16);

#undef CONVERGE_ASSERT_LAYOUT
#undef CONVERGE_ASSERT_OFFSET

#endif  // CONVERGE_IOMMU_UAPI_COMPAT_H_
