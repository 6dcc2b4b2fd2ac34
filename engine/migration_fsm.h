// The VFIO migration v2 state machine, in user space.
//
// The kernel moves a device from its current state to a requested one by
// walking its next-step table (vfio_mig_get_next_state in
// drivers/vfio/vfio_main.c), skipping states the device's migration flags do
// not cover. This file types that table in once and answers, before any
// ioctl: which states a device can use, which states a SET will pass
// through, and whether the SET opens or ends a data session (a data_fd).
//
// Two requests are refused outright: STOP_COPY -> PRE_COPY and
// STOP_COPY -> PRE_COPY_P2P. The kernel's table maps them to ERROR, which
// no device flag covers, so its skip loop spins forever on a PRE_COPY
// device (every kernel from 6.2 until a 2026 stable fix). ERROR can never
// be requested; only VFIO_DEVICE_RESET leaves it.
//
// Thread-safety: every function here is pure and safe to call from any
// thread.

#ifndef CONVERGE_ENGINE_MIGRATION_FSM_H_
#define CONVERGE_ENGINE_MIGRATION_FSM_H_

#include <cstdint>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "iommu/mig_state.h"

namespace converge {

// The state the kernel reported as a raw u32, or an error naming the value.
[[nodiscard]] Result<MigState> MigStateFromKernel(uint32_t raw);

// Device migration flags (struct vfio_device_feature_migration). The values
// are the kernel's VFIO_MIGRATION_* bits.
inline constexpr uint64_t kMigrationStopCopy = 1u << 0;
inline constexpr uint64_t kMigrationP2p = 1u << 1;
inline constexpr uint64_t kMigrationPreCopy = 1u << 2;

// True when a device with `flags` supports `state` (it may be requested or
// walked through). ERROR is never usable; nothing is usable without the
// mandatory VFIO_MIGRATION_STOP_COPY.
bool IsUsable(MigState state, uint64_t flags);

// True for STOP_COPY -> PRE_COPY and STOP_COPY -> PRE_COPY_P2P, the two
// arcs that hang the kernel.
bool IsRefusedArc(MigState from, MigState to);

// The first state the kernel moves to on the way from `from` to `to`
// (optional states collapsed). Returns `to` itself when from == to.
// Errors (kInvalidArgument / kFailedPrecondition), each naming the states:
// a refused arc, an unusable current or target state, ERROR as either end,
// flags without STOP_COPY.
[[nodiscard]] Result<MigState> NextStep(MigState from, MigState to,
                                        uint64_t flags);

// Every state a SET from `from` to `to` passes through, `to` last; empty
// when from == to. Same errors as NextStep().
[[nodiscard]] Result<std::vector<MigState>> PlanPath(MigState from,
                                                     MigState to,
                                                     uint64_t flags);

// Data sessions, arc by arc (one step of a planned path). A saving session
// spans PRE_COPY, PRE_COPY_P2P and STOP_COPY with one data_fd; a resuming
// session is RESUMING.
bool IsSavingState(MigState state);
// True when the arc returns a new data_fd (RUNNING -> PRE_COPY,
// RUNNING_P2P -> PRE_COPY_P2P, STOP -> STOP_COPY, STOP -> RESUMING).
bool ArcOpensDataFd(MigState from, MigState to);
// True when the arc ends the session the data_fd belongs to (STOP_COPY ->
// STOP, PRE_COPY -> RUNNING, PRE_COPY_P2P -> RUNNING_P2P, RESUMING -> STOP).
bool ArcEndsDataSession(MigState from, MigState to);

// What a whole SET does to data sessions, from its planned path.
struct PathDataEffect {
  bool ends_session = false;  // some arc ends the current session
  bool opens_data_fd = false;  // the SET returns a new data_fd
};
[[nodiscard]] Result<PathDataEffect> DataEffectOfSet(MigState from,
                                                     MigState to,
                                                     uint64_t flags);

}  // namespace converge

#endif  // CONVERGE_ENGINE_MIGRATION_FSM_H_
