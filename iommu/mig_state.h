// The VFIO migration states (enum vfio_device_mig_state in
// <linux/vfio.h>; PRE_COPY and PRE_COPY_P2P from Linux 6.2), shared by the
// engine's state machine (engine/migration_fsm.h) and the emulated kernel's
// (sim/vfio_migration_fsm.h). Each of the two keeps its own copy of the
// kernel's next-step table, so tests can check one against the other.
//
// Thread-safety: constants and a pure function.

#ifndef CONVERGE_IOMMU_MIG_STATE_H_
#define CONVERGE_IOMMU_MIG_STATE_H_

#include <cstdint>
#include <string_view>

namespace converge {

// The values are the kernel ABI.
enum class MigState : uint32_t {
  kError = 0,
  kStop = 1,
  kRunning = 2,
  kStopCopy = 3,
  kResuming = 4,
  kRunningP2p = 5,
  kPreCopy = 6,
  kPreCopyP2p = 7,
};

inline constexpr uint32_t kNumMigStates = 8;

// "STOP_COPY", "PRE_COPY_P2P", ...; "INVALID" for values past the enum.
std::string_view MigStateName(MigState state);

}  // namespace converge

#endif  // CONVERGE_IOMMU_MIG_STATE_H_
