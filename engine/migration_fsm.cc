#include "engine/migration_fsm.h"

#include <cstdio>
#include <string>

namespace converge {
namespace {

using S = MigState;

// vfio_from_fsm_table: kNextStep[from][to] is the kernel's next step before
// optional states are skipped. Indexed by the ABI values.
constexpr S kNextStep[kNumMigStates][kNumMigStates] = {
    // from ERROR: nothing leaves ERROR but a reset.
    {S::kError, S::kError, S::kError, S::kError, S::kError, S::kError,
     S::kError, S::kError},
    // from STOP
    {S::kError, S::kStop, S::kRunningP2p, S::kStopCopy, S::kResuming,
     S::kRunningP2p, S::kRunningP2p, S::kRunningP2p},
    // from RUNNING
    {S::kError, S::kRunningP2p, S::kRunning, S::kRunningP2p, S::kRunningP2p,
     S::kRunningP2p, S::kPreCopy, S::kRunningP2p},
    // from STOP_COPY: the two ERROR entries are the arcs that hang.
    {S::kError, S::kStop, S::kStop, S::kStopCopy, S::kStop, S::kStop,
     S::kError, S::kError},
    // from RESUMING
    {S::kError, S::kStop, S::kStop, S::kStop, S::kResuming, S::kStop,
     S::kStop, S::kStop},
    // from RUNNING_P2P
    {S::kError, S::kStop, S::kRunning, S::kStop, S::kStop, S::kRunningP2p,
     S::kRunning, S::kPreCopyP2p},
    // from PRE_COPY
    {S::kError, S::kRunning, S::kRunning, S::kPreCopyP2p, S::kRunning,
     S::kRunning, S::kPreCopy, S::kPreCopyP2p},
    // from PRE_COPY_P2P
    {S::kError, S::kRunningP2p, S::kRunningP2p, S::kStopCopy,
     S::kRunningP2p, S::kRunningP2p, S::kPreCopy, S::kPreCopyP2p},
};

constexpr uint32_t Index(MigState s) { return static_cast<uint32_t>(s); }

bool IsValid(MigState s) { return Index(s) < kNumMigStates; }

// The flags a state needs (state_flags_table without ERROR's ~0).
uint64_t RequiredFlags(MigState s) {
  switch (s) {
    case S::kRunningP2p:
      return kMigrationStopCopy | kMigrationP2p;
    case S::kPreCopy:
      return kMigrationStopCopy | kMigrationPreCopy;
    case S::kPreCopyP2p:
      return kMigrationStopCopy | kMigrationP2p | kMigrationPreCopy;
    default:
      return kMigrationStopCopy;
  }
}

std::string FlagsText(uint64_t flags) {
  char buf[32];
  snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(flags));
  return buf;
}

std::string MissingFlagsText(MigState s, uint64_t flags) {
  uint64_t missing = RequiredFlags(s) & ~flags;
  std::string out;
  auto add = [&](uint64_t bit, const char* name) {
    if (missing & bit) {
      if (!out.empty()) out += " and ";
      out += name;
    }
  };
  add(kMigrationStopCopy, "VFIO_MIGRATION_STOP_COPY");
  add(kMigrationP2p, "VFIO_MIGRATION_P2P");
  add(kMigrationPreCopy, "VFIO_MIGRATION_PRE_COPY");
  return out;
}

Status CheckRequest(MigState from, MigState to, uint64_t flags) {
  std::string arc = std::string(MigStateName(from)) + " -> " +
                    std::string(MigStateName(to));
  if (!IsValid(from) || !IsValid(to)) {
    return InvalidArgumentError("migration state out of range in " + arc);
  }
  if (IsRefusedArc(from, to)) {
    return InvalidArgumentError(
        arc + " is refused: the kernel's FSM has no way out of STOP_COPY to "
              "a pre-copy state and loops forever on it");
  }
  if ((flags & kMigrationStopCopy) == 0) {
    return InvalidArgumentError("device migration flags " + FlagsText(flags) +
                                " lack the mandatory "
                                "VFIO_MIGRATION_STOP_COPY");
  }
  if (to == S::kError) {
    return InvalidArgumentError(arc + ": ERROR can never be requested");
  }
  if (from == S::kError) {
    return FailedPreconditionError(
        arc + ": the device is in ERROR; only VFIO_DEVICE_RESET leaves it");
  }
  if (!IsUsable(from, flags)) {
    return InvalidArgumentError(arc + ": current state " +
                                std::string(MigStateName(from)) + " needs " +
                                MissingFlagsText(from, flags));
  }
  if (!IsUsable(to, flags)) {
    return InvalidArgumentError(arc + ": target state " +
                                std::string(MigStateName(to)) + " needs " +
                                MissingFlagsText(to, flags));
  }
  return OkStatus();
}

}  // namespace


Result<MigState> MigStateFromKernel(uint32_t raw) {
  if (raw >= kNumMigStates) {
    return InvalidArgumentError("unknown device migration state " +
                                std::to_string(raw));
  }
  return static_cast<MigState>(raw);
}

bool IsUsable(MigState state, uint64_t flags) {
  if (!IsValid(state) || state == S::kError) return false;
  uint64_t need = RequiredFlags(state);
  return (flags & need) == need;
}

bool IsRefusedArc(MigState from, MigState to) {
  return from == S::kStopCopy && (to == S::kPreCopy || to == S::kPreCopyP2p);
}

Result<MigState> NextStep(MigState from, MigState to, uint64_t flags) {
  CONVERGE_RETURN_IF_ERROR(CheckRequest(from, to, flags));
  // The kernel's skip loop. It terminates for every request CheckRequest()
  // lets through; the bound turns a table error into a clear failure
  // instead of the kernel's hang.
  MigState step = kNextStep[Index(from)][Index(to)];
  for (uint32_t i = 0; !IsUsable(step, flags); ++i) {
    if (step == S::kError || i == kNumMigStates) {
      return InternalError("no path from " + std::string(MigStateName(from)) +
                           " to " + std::string(MigStateName(to)) +
                           " with flags " + FlagsText(flags));
    }
    step = kNextStep[Index(step)][Index(to)];
  }
  return step;
}

Result<std::vector<MigState>> PlanPath(MigState from, MigState to,
                                       uint64_t flags) {
  CONVERGE_RETURN_IF_ERROR(CheckRequest(from, to, flags));
  std::vector<MigState> path;
  MigState cur = from;
  while (cur != to) {
    if (path.size() == kNumMigStates) {
      return InternalError("path from " + std::string(MigStateName(from)) +
                           " to " + std::string(MigStateName(to)) +
                           " does not end");
    }
    CONVERGE_ASSIGN_OR_RETURN(cur, NextStep(cur, to, flags));
    path.push_back(cur);
  }
  return path;
}

bool IsSavingState(MigState state) {
  return state == S::kPreCopy || state == S::kPreCopyP2p ||
         state == S::kStopCopy;
}

bool ArcOpensDataFd(MigState from, MigState to) {
  if (IsSavingState(to)) return !IsSavingState(from);
  return to == S::kResuming && from != S::kResuming;
}

bool ArcEndsDataSession(MigState from, MigState to) {
  if (IsSavingState(from)) return !IsSavingState(to);
  return from == S::kResuming && to != S::kResuming;
}

Result<PathDataEffect> DataEffectOfSet(MigState from, MigState to,
                                       uint64_t flags) {
  CONVERGE_ASSIGN_OR_RETURN(std::vector<MigState> path,
                            PlanPath(from, to, flags));
  PathDataEffect effect;
  MigState cur = from;
  for (MigState next : path) {
    effect.ends_session |= ArcEndsDataSession(cur, next);
    effect.opens_data_fd |= ArcOpensDataFd(cur, next);
    cur = next;
  }
  return effect;
}

}  // namespace converge
