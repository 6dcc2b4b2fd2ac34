#include "engine/device_session.h"

#include <cassert>
#include <utility>

#include "engine/vfio_feature.h"
#include "iommu/uapi_compat.h"

namespace converge {

Result<std::unique_ptr<DeviceSession>> DeviceSession::Open(
    Kernel& kernel, int device_fd, std::string name, Options options) {
  assert(device_fd >= 0);
  vfio_device_feature_migration mig{};
  Status s = DeviceFeature(kernel, device_fd, FeatureOp::kGet,
                           VFIO_DEVICE_FEATURE_MIGRATION, &mig, sizeof mig,
                           "get migration flags of " + name);
  if (!s.ok()) {
    if (s.sys_errno() == ENOTTY || s.sys_errno() == EINVAL) {
      return NotSupportedError("device " + name +
                               " does not support migration (" +
                               s.ToString() + ")");
    }
    return s;
  }
  DeviceCapabilities caps;
  caps.migration_flags = mig.flags;
  if ((caps.migration_flags & kMigrationStopCopy) == 0) {
    return NotSupportedError("device " + name +
                             " reports migration flags without the "
                             "mandatory VFIO_MIGRATION_STOP_COPY");
  }
  caps.p2p = (caps.migration_flags & kMigrationP2p) != 0;
  caps.pre_copy = (caps.migration_flags & kMigrationPreCopy) != 0;
  CONVERGE_ASSIGN_OR_RETURN(
      caps.dma_logging,
      ProbeDeviceFeature(kernel, device_fd,
                         VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
                         static_cast<uint32_t>(FeatureOp::kSet)));
  CONVERGE_ASSIGN_OR_RETURN(
      caps.mig_data_size,
      ProbeDeviceFeature(kernel, device_fd, VFIO_DEVICE_FEATURE_MIG_DATA_SIZE,
                         static_cast<uint32_t>(FeatureOp::kGet)));
  std::unique_ptr<DeviceSession> session(
      new DeviceSession(kernel, device_fd, std::move(name), caps, options));
  CONVERGE_RETURN_IF_ERROR(session->device_.GetState());
  return session;
}

DeviceSession::DeviceSession(Kernel& kernel, int device_fd, std::string name,
                             const DeviceCapabilities& caps,
                             const Options& options)
    : kernel_(kernel),
      device_fd_(device_fd),
      caps_(caps),
      device_(kernel, device_fd, caps.migration_flags, std::move(name),
              options.recovery) {}

Status DeviceSession::Transition(MigState target) {
  if (!device_.state()) CONVERGE_RETURN_IF_ERROR(device_.GetState());
  // An invalid request fails the same way in SetState(), before any ioctl.
  Result<PathDataEffect> effect =
      DataEffectOfSet(*device_.state(), target, caps_.migration_flags);
  Result<KernelFd> fd = device_.SetState(target);
  if (!fd.ok()) {
    // Recovery may have ended the session (back to RUNNING, or a reset).
    std::optional<MigState> now = device_.state();
    if (!now || !(IsSavingState(*now) || *now == MigState::kResuming)) {
      (void)data_fd_.Reset();
    }
    return fd.status();
  }
  if (effect.ok() && effect->ends_session) {
    CONVERGE_RETURN_IF_ERROR(data_fd_.Reset().WithContext(
        "close data_fd of " + name()));
  }
  if (fd->valid()) data_fd_ = std::move(*fd);
  return OkStatus();
}

Result<DevicePrecopyInfo> DeviceSession::QueryPrecopyInfo() {
  std::optional<MigState> s = device_.state();
  if (!data_fd_.valid() || !s ||
      (*s != MigState::kPreCopy && *s != MigState::kPreCopyP2p)) {
    return FailedPreconditionError(
        "PRECOPY_INFO of " + name() + " needs PRE_COPY or PRE_COPY_P2P "
        "with a data_fd; device is in " +
        std::string(s ? MigStateName(*s) : "an unknown state"));
  }
  vfio_precopy_info info{};
  info.argsz = sizeof info;
  Result<int> r =
      kernel_.Ioctl(data_fd_.get(), VFIO_MIG_GET_PRECOPY_INFO, &info);
  if (!r.ok()) return r.status().WithContext("PRECOPY_INFO of " + name());
  DevicePrecopyInfo out;
  out.initial_bytes = info.initial_bytes;
  out.dirty_bytes = info.dirty_bytes;
  out.reinit = (info.flags & VFIO_PRECOPY_INFO_REINIT) != 0;
  return out;
}

Result<uint64_t> DeviceSession::QueryStopCopyBytes() {
  if (!caps_.mig_data_size) {
    return NotSupportedError("device " + name() + " lacks MIG_DATA_SIZE");
  }
  vfio_device_feature_mig_data_size size{};
  CONVERGE_RETURN_IF_ERROR(DeviceFeature(
      kernel_, device_fd_, FeatureOp::kGet, VFIO_DEVICE_FEATURE_MIG_DATA_SIZE,
      &size, sizeof size, "get MIG_DATA_SIZE of " + name()));
  return static_cast<uint64_t>(size.stop_copy_length);
}

Status ReturnDevicesToRunning(std::span<DeviceSession* const> devices) {
  Status first;
  for (DeviceSession* d : devices) {
    Status s = d->Transition(MigState::kRunning);
    if (!s.ok() && first.ok()) first = s;
  }
  return first;
}

namespace {

// Every device back to RUNNING after `error`; the message says so.
Status Unwind(std::span<DeviceSession* const> devices, const Status& error) {
  Status back = ReturnDevicesToRunning(devices);
  std::string msg = error.message() + "; every device returned to RUNNING";
  if (!back.ok()) msg += " except: " + back.ToString();
  return Status(error.code(), std::move(msg), error.sys_errno());
}

}  // namespace

Status MoveDevicesToP2p(std::span<DeviceSession* const> devices) {
  for (DeviceSession* d : devices) {
    if (!d->capabilities().p2p) continue;
    std::optional<MigState> s = d->state();
    if (s && (*s == MigState::kRunningP2p || *s == MigState::kPreCopyP2p)) {
      continue;
    }
    MigState quiet = s && *s == MigState::kPreCopy ? MigState::kPreCopyP2p
                                                  : MigState::kRunningP2p;
    Status st = d->Transition(quiet);
    if (!st.ok()) return Unwind(devices, st);
  }
  return OkStatus();
}

Status MoveDevicesToStop(std::span<DeviceSession* const> devices,
                         MigState target) {
  assert(target == MigState::kStop || target == MigState::kStopCopy);
  // Phase 1: quiesce every device that can be quiesced.
  CONVERGE_RETURN_IF_ERROR(MoveDevicesToP2p(devices));
  // Phase 2: only now may any device stop.
  for (DeviceSession* d : devices) {
    Status st = d->Transition(target);
    if (!st.ok()) return Unwind(devices, st);
  }
  return OkStatus();
}

}  // namespace converge
