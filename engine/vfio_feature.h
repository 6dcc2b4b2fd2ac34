// VFIO_DEVICE_FEATURE on a device fd: the one wrapper engine/ uses for the
// migration features (MIGRATION, MIG_DEVICE_STATE, MIG_DATA_SIZE) and for
// PROBE of any feature.
//
// The ioctl takes struct vfio_device_feature (argsz, flags) followed by the
// feature's payload; argsz = 8 + payload size.
//
// Thread-safety: stateless; safe from any thread for distinct buffers.

#ifndef CONVERGE_ENGINE_VFIO_FEATURE_H_
#define CONVERGE_ENGINE_VFIO_FEATURE_H_

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "base/status.h"
#include "iommu/kernel.h"
#include "iommu/mig_state.h"

namespace converge {

enum class FeatureOp : uint32_t {
  kGet = 1u << 16,    // VFIO_DEVICE_FEATURE_GET
  kSet = 1u << 17,    // VFIO_DEVICE_FEATURE_SET
  kProbe = 1u << 18,  // VFIO_DEVICE_FEATURE_PROBE
};

// Issues a VFIO_DEVICE_FEATURE GET or SET of `feature` with `payload`
// (copied in, and copied back out on success). `what` names the call in
// errors. REQUIRES: op is kGet or kSet; feature <= 0xffff;
// payload_bytes <= 64.
[[nodiscard]] Status DeviceFeature(Kernel& kernel, int device_fd,
                                   FeatureOp op, uint32_t feature,
                                   void* payload, size_t payload_bytes,
                                   std::string_view what);

// One SET of MIG_DEVICE_STATE to `state`, as the kernel takes it (no path
// planning: MigrationDevice walks the FSM). Returns the data_fd the arc
// opened, or -1 when it opened none. `what` names the call in errors.
[[nodiscard]] Result<int> SetMigDeviceState(Kernel& kernel, int device_fd,
                                            MigState state,
                                            std::string_view what);

// PROBE of `feature` with GET and/or SET (op_mask of kGet | kSet bits).
// Returns false when the device lacks the feature (ENOTTY on newer
// kernels, EINVAL on older ones), true when it has it, and other errors
// as they are.
[[nodiscard]] Result<bool> ProbeDeviceFeature(Kernel& kernel, int device_fd,
                                              uint32_t feature,
                                              uint32_t op_mask);

}  // namespace converge

#endif  // CONVERGE_ENGINE_VFIO_FEATURE_H_
