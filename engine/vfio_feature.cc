#include "engine/vfio_feature.h"

#include <cassert>
#include <cstring>
#include <string>

#include "iommu/uapi_compat.h"

namespace converge {
namespace {

constexpr size_t kMaxPayloadBytes = 64;

}  // namespace

Status DeviceFeature(Kernel& kernel, int device_fd, FeatureOp op,
                     uint32_t feature, void* payload, size_t payload_bytes,
                     std::string_view what) {
  assert(feature <= VFIO_DEVICE_FEATURE_MASK);
  assert(payload_bytes <= kMaxPayloadBytes);
  assert(op != FeatureOp::kProbe && "use ProbeDeviceFeature()");
  alignas(8) unsigned char buf[sizeof(vfio_device_feature) + kMaxPayloadBytes];
  vfio_device_feature header{};
  header.argsz = static_cast<__u32>(sizeof(header) + payload_bytes);
  header.flags = static_cast<__u32>(op) | feature;
  std::memcpy(buf, &header, sizeof header);
  if (payload_bytes > 0) {
    std::memcpy(buf + sizeof header, payload, payload_bytes);
  }
  Result<int> r = kernel.Ioctl(device_fd, VFIO_DEVICE_FEATURE, buf);
  if (!r.ok()) return r.status().WithContext(what);
  if (payload_bytes > 0) {
    std::memcpy(payload, buf + sizeof header, payload_bytes);
  }
  return OkStatus();
}

Result<int> SetMigDeviceState(Kernel& kernel, int device_fd, MigState state,
                              std::string_view what) {
  vfio_device_feature_mig_state mig{};
  mig.device_state = static_cast<__u32>(state);
  mig.data_fd = -1;
  CONVERGE_RETURN_IF_ERROR(DeviceFeature(kernel, device_fd, FeatureOp::kSet,
                                         VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
                                         &mig, sizeof mig, what));
  return static_cast<int>(mig.data_fd);
}

Result<bool> ProbeDeviceFeature(Kernel& kernel, int device_fd,
                                uint32_t feature, uint32_t op_mask) {
  assert((op_mask & ~(static_cast<uint32_t>(FeatureOp::kGet) |
                      static_cast<uint32_t>(FeatureOp::kSet))) == 0);
  alignas(8) vfio_device_feature header{};
  header.argsz = sizeof header;
  header.flags = static_cast<__u32>(FeatureOp::kProbe) | op_mask | feature;
  Result<int> r = kernel.Ioctl(device_fd, VFIO_DEVICE_FEATURE, &header);
  if (r.ok()) return true;
  int err = r.status().sys_errno();
  if (err == ENOTTY || err == EINVAL) return false;
  return r.status().WithContext("probe VFIO device feature " +
                                std::to_string(feature));
}

}  // namespace converge
