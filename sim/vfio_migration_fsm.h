// The VFIO migration v2 state machine as the kernel computes it
// (drivers/vfio/vfio_main.c, vfio_mig_get_next_state), including the skip
// loop over states a device does not support and its one known hang.
//
// Thread-safety: pure functions of their arguments.

#ifndef CONVERGE_SIM_VFIO_MIGRATION_FSM_H_
#define CONVERGE_SIM_VFIO_MIGRATION_FSM_H_

#include <cstdint>
#include <string_view>

#include "base/status.h"
#include "iommu/mig_state.h"

namespace converge::sim {

using ::converge::kNumMigStates;
using ::converge::MigState;
using ::converge::MigStateName;

// True when migration_flags (VFIO_MIGRATION_*) cover every flag the state
// needs: RUNNING_P2P needs P2P, PRE_COPY needs PRE_COPY, PRE_COPY_P2P both.
// ERROR and values outside the enum are never usable.
bool MigStateUsable(MigState state, uint64_t migration_flags);

// The next arc from cur toward target, exactly as the kernel picks it.
// Errors: EINVAL (kInvalidArgument) when cur or target is unusable or the
// path leads to ERROR; EDEADLK when the real kernel would spin forever in
// its skip loop (STOP_COPY -> PRE_COPY or PRE_COPY_P2P on a PRE_COPY
// device), so callers can refuse the arc loudly instead of hanging.
// REQUIRES: cur != target.
Result<MigState> MigNextState(MigState cur, MigState target,
                              uint64_t migration_flags);

// True for the arcs that open a data session and return a new data_fd:
// RUNNING -> PRE_COPY, RUNNING_P2P -> PRE_COPY_P2P, STOP -> STOP_COPY,
// STOP -> RESUMING.
bool MigArcOpensDataFd(MigState from, MigState to);

}  // namespace converge::sim

#endif  // CONVERGE_SIM_VFIO_MIGRATION_FSM_H_
