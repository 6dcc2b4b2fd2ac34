#include "sim/vfio_migration_fsm.h"

#include <linux/vfio.h>

#include <cassert>
#include <cerrno>
#include <string>

#include "iommu/uapi_compat.h"

namespace converge::sim {
namespace {

using S = MigState;
constexpr S kE = S::kError, kS = S::kStop, kR = S::kRunning,
            kSC = S::kStopCopy, kRe = S::kResuming, kRP = S::kRunningP2p,
            kPC = S::kPreCopy, kPP = S::kPreCopyP2p;

// vfio_from_fsm_table: next step for [current][target].
constexpr S kNextStep[kNumMigStates][kNumMigStates] = {
    //  to: ERROR STOP RUNNING STOP_COPY RESUMING RUNNING_P2P PRE_COPY PC_P2P
    /* ERROR */ {kE, kE, kE, kE, kE, kE, kE, kE},
    /* STOP */ {kE, kS, kRP, kSC, kRe, kRP, kRP, kRP},
    /* RUNNING */ {kE, kRP, kR, kRP, kRP, kRP, kPC, kRP},
    /* STOP_COPY */ {kE, kS, kS, kSC, kS, kS, kE, kE},
    /* RESUMING */ {kE, kS, kS, kS, kRe, kS, kS, kS},
    /* RUNNING_P2P */ {kE, kS, kR, kS, kS, kRP, kR, kPP},
    /* PRE_COPY */ {kE, kR, kR, kPP, kR, kR, kPC, kPP},
    /* PRE_COPY_P2P */ {kE, kRP, kRP, kSC, kRP, kRP, kPC, kPP},
};

// state_flags_table: the migration flags a state needs. ERROR needs every
// bit, so it is never usable.
constexpr uint64_t kNeeds[kNumMigStates] = {
    ~uint64_t{0},
    VFIO_MIGRATION_STOP_COPY,
    VFIO_MIGRATION_STOP_COPY,
    VFIO_MIGRATION_STOP_COPY,
    VFIO_MIGRATION_STOP_COPY,
    VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P,
    VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_PRE_COPY,
    VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P | VFIO_MIGRATION_PRE_COPY,
};

uint32_t Index(S s) { return static_cast<uint32_t>(s); }

}  // namespace

bool MigStateUsable(MigState state, uint64_t migration_flags) {
  if (Index(state) >= kNumMigStates) return false;
  uint64_t needs = kNeeds[Index(state)];
  return (needs & migration_flags) == needs;
}

Result<MigState> MigNextState(MigState cur, MigState target,
                              uint64_t migration_flags) {
  assert(cur != target);
  std::string arc = std::string(MigStateName(cur)) + " -> " +
                    std::string(MigStateName(target));
  if (!MigStateUsable(cur, migration_flags)) {
    return ErrnoStatus(EINVAL, "migration state " + arc +
                                   ": current state not supported by device");
  }
  if (!MigStateUsable(target, migration_flags)) {
    return ErrnoStatus(EINVAL, "migration state " + arc +
                                   ": target state not supported by device");
  }
  // The kernel's skip loop: while the step is unusable, step again from it.
  // A chain that revisits a state (ERROR -> ERROR; ERROR is never usable)
  // is the kernel's endless loop.
  MigState next = kNextStep[Index(cur)][Index(target)];
  uint32_t visited = 0;
  while (!MigStateUsable(next, migration_flags)) {
    uint32_t bit = 1u << Index(next);
    if (visited & bit) {
      return ErrnoStatus(EDEADLK,
                         "migration state " + arc +
                             ": kernel would hang (vfio_mig_get_next_state "
                             "loops forever on this arc)");
    }
    visited |= bit;
    next = kNextStep[Index(next)][Index(target)];
  }
  return next;
}

bool MigArcOpensDataFd(MigState from, MigState to) {
  return (from == S::kRunning && to == S::kPreCopy) ||
         (from == S::kRunningP2p && to == S::kPreCopyP2p) ||
         (from == S::kStop && to == S::kStopCopy) ||
         (from == S::kStop && to == S::kResuming);
}

}  // namespace converge::sim
