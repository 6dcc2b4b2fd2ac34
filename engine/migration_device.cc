#include "engine/migration_device.h"

#include <cassert>
#include <string>
#include <utility>

#include "engine/vfio_feature.h"
#include "iommu/uapi_compat.h"

namespace converge {
namespace {

std::string StateText(std::optional<MigState> state) {
  return state ? std::string(MigStateName(*state)) : std::string("unknown");
}

}  // namespace

std::string_view RecoveryOutcomeName(RecoveryOutcome outcome) {
  switch (outcome) {
    case RecoveryOutcome::kNone: return "none";
    case RecoveryOutcome::kAlreadyRunning: return "already RUNNING";
    case RecoveryOutcome::kReturnedToRunning: return "returned to RUNNING";
    case RecoveryOutcome::kReset: return "reset to RUNNING";
    case RecoveryOutcome::kLeftInPlace: return "left in place by policy";
    case RecoveryOutcome::kFailed: return "recovery failed";
  }
  return "invalid";
}

MigrationDevice::MigrationDevice(Kernel& kernel, int device_fd, uint64_t flags,
                                 std::string name, Options options)
    : kernel_(kernel),
      device_fd_(device_fd),
      flags_(flags),
      name_(std::move(name)),
      options_(options) {
  assert(device_fd >= 0);
}

Result<MigState> MigrationDevice::GetState() {
  vfio_device_feature_mig_state mig{};
  mig.data_fd = -1;
  Status s = DeviceFeature(kernel_, device_fd_, FeatureOp::kGet,
                           VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, &mig,
                           sizeof mig, "get migration state of " + name_);
  if (!s.ok()) {
    state_.reset();
    return s;
  }
  Result<MigState> state = MigStateFromKernel(mig.device_state);
  if (!state.ok()) {
    state_.reset();
    return state.status().WithContext(name_);
  }
  state_ = *state;
  return *state;
}

Result<int> MigrationDevice::IssueSet(MigState target) {
  return SetMigDeviceState(
      kernel_, device_fd_, target,
      "set " + name_ + " to " + std::string(MigStateName(target)));
}

Result<KernelFd> MigrationDevice::SetState(MigState target) {
  if (!state_) CONVERGE_RETURN_IF_ERROR(GetState());
  const MigState from = *state_;
  Result<PathDataEffect> effect = DataEffectOfSet(from, target, flags_);
  if (!effect.ok()) return effect.status().WithContext(name_);
  if (from == target) return KernelFd();

  Result<int> fd = IssueSet(target);
  if (!fd.ok()) return Recover(from, target, fd.status());
  state_ = target;
  KernelFd data_fd = *fd >= 0 ? KernelFd(kernel_, *fd) : KernelFd();
  if (data_fd.valid() != effect->opens_data_fd) {
    return InternalError(
        name_ + ": " + std::string(MigStateName(from)) + " -> " +
        std::string(MigStateName(target)) +
        (data_fd.valid() ? " returned a data_fd the FSM does not open"
                         : " returned no data_fd where the FSM opens one"));
  }
  return data_fd;
}

Result<MigState> MigrationDevice::Reset() {
  Result<int> r = kernel_.Ioctl(device_fd_, VFIO_DEVICE_RESET, nullptr);
  if (!r.ok()) {
    state_.reset();
    return r.status().WithContext("reset " + name_);
  }
  return GetState();
}

Status MigrationDevice::Recover(MigState from, MigState target,
                                Status error) {
  SetFailure f;
  f.from = from;
  f.target = target;
  f.error = error;
  Result<MigState> after = GetState();
  if (after.ok()) f.state_after = *after;

  if (!after.ok()) {
    f.recovery = RecoveryOutcome::kFailed;
    f.recovery_error = after.status();
  } else if (*after == MigState::kRunning) {
    f.recovery = RecoveryOutcome::kAlreadyRunning;
  } else if (*after != MigState::kError && !options_.return_to_running) {
    f.recovery = RecoveryOutcome::kLeftInPlace;
  } else {
    if (*after != MigState::kError) {
      Result<int> back = IssueSet(MigState::kRunning);
      if (back.ok()) {
        state_ = MigState::kRunning;
        // Returning to RUNNING never opens a data session.
        if (*back >= 0) (void)kernel_.Close(*back);
        f.recovery = RecoveryOutcome::kReturnedToRunning;
      } else {
        f.recovery = RecoveryOutcome::kFailed;
        f.recovery_error = back.status();
        // Leaving RESUMING validates the stream; a failure there can put
        // the device in ERROR, which only a reset leaves.
        (void)GetState();
      }
    }
    if (state_ == MigState::kError) {
      if (!options_.reset_on_error) {
        if (f.recovery != RecoveryOutcome::kFailed) {
          f.recovery = RecoveryOutcome::kLeftInPlace;
        }
      } else {
        Result<MigState> reset = Reset();
        if (reset.ok() && *reset == MigState::kRunning) {
          f.recovery = RecoveryOutcome::kReset;
          f.recovery_error = OkStatus();
        } else {
          f.recovery = RecoveryOutcome::kFailed;
          f.recovery_error =
              reset.ok() ? InternalError("reset left " + name_ + " in " +
                                         std::string(MigStateName(*reset)))
                         : reset.status();
        }
      }
    }
  }
  f.final_state = state_;
  last_failure_ = f;

  std::string msg = error.message() + "; " + name_ + " left in " +
                    StateText(f.state_after) + " (was " +
                    std::string(MigStateName(from)) + ", asked " +
                    std::string(MigStateName(target)) + "); recovery: " +
                    std::string(RecoveryOutcomeName(f.recovery));
  if (!f.recovery_error.ok()) msg += " (" + f.recovery_error.ToString() + ")";
  msg += "; now " + StateText(f.final_state);
  return Status(error.code(), std::move(msg), error.sys_errno());
}

}  // namespace converge
