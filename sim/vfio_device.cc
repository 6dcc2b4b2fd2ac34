#include "sim/vfio_device.h"

#include <chrono>
#include <cstdio>
#include <string>

namespace converge::sim {
namespace {

constexpr uint32_t kFeatureOps = VFIO_DEVICE_FEATURE_GET |
                                 VFIO_DEVICE_FEATURE_SET |
                                 VFIO_DEVICE_FEATURE_PROBE;

std::string ArcName(MigState from, MigState to) {
  return std::string(MigStateName(from)) + " -> " +
         std::string(MigStateName(to));
}

bool IsPreCopy(MigState s) {
  return s == MigState::kPreCopy || s == MigState::kPreCopyP2p;
}

// vfio_check_feature(): 0 = PROBE answered, 1 = carry out the operation.
Result<int> CheckFeature(const char* name, uint32_t flags,
                         uint64_t payload_bytes, uint32_t supported_ops,
                         uint64_t min_payload_bytes) {
  std::string what = std::string("VFIO_DEVICE_FEATURE ") + name;
  uint32_t ops = flags & (VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET);
  if (ops & ~supported_ops) {
    return ErrnoStatus(EINVAL, what + ": operation not supported");
  }
  if (flags & VFIO_DEVICE_FEATURE_PROBE) return 0;
  if (ops == 0) return ErrnoStatus(EINVAL, what + ": neither GET nor SET");
  if (payload_bytes < min_payload_bytes) {
    return ErrnoStatus(EINVAL, what + ": argsz leaves " +
                                   std::to_string(payload_bytes) +
                                   " payload bytes, needs " +
                                   std::to_string(min_payload_bytes));
  }
  return 1;
}

// The object behind a data_fd: routes VFIO_MIG_GET_PRECOPY_INFO to the
// device session that opened it.
class DataFdObject final : public EmulatedObject {
 public:
  DataFdObject(std::weak_ptr<EmulatedVfioDevice> device, uint64_t session_id)
      : device_(std::move(device)), session_id_(session_id) {}

  Result<int> Ioctl(unsigned long request, void* arg) override {
    if (request != VFIO_MIG_GET_PRECOPY_INFO) {
      return ErrnoStatus(ENOTTY, "ioctl on data_fd");
    }
    std::shared_ptr<EmulatedVfioDevice> device = device_.lock();
    if (device == nullptr) {
      return ErrnoStatus(ENODEV, "VFIO_MIG_GET_PRECOPY_INFO: device is gone");
    }
    return device->PrecopyInfo(session_id_,
                               static_cast<vfio_precopy_info*>(arg));
  }

 private:
  const std::weak_ptr<EmulatedVfioDevice> device_;
  const uint64_t session_id_;
};

}  // namespace

std::shared_ptr<EmulatedVfioDevice> EmulatedVfioDevice::Create(
    EmulatedKernel& kernel, VfioDeviceOptions options) {
  return std::make_shared<EmulatedVfioDevice>(PassKey{}, kernel,
                                              std::move(options));
}

EmulatedVfioDevice::EmulatedVfioDevice(PassKey, EmulatedKernel& kernel,
                                       VfioDeviceOptions options)
    : kernel_(kernel),
      options_(std::move(options)),
      content_(std::make_shared<DeviceStateContent>(options_.seed,
                                                    options_.content)),
      dma_log_(options_.dma_log_max_ranges, options_.dma_log_page_sizes) {}

EmulatedVfioDevice::~EmulatedVfioDevice() {
  std::lock_guard<std::mutex> lock(mu_);
  EndAllSessions();
}

uint64_t EmulatedVfioDevice::NowNs() const {
  if (options_.clock_ns) return options_.clock_ns();
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

Result<int> EmulatedVfioDevice::Ioctl(unsigned long request, void* arg) {
  if (request == VFIO_DEVICE_FEATURE) {
    return Feature(static_cast<vfio_device_feature*>(arg));
  }
  if (request == VFIO_DEVICE_RESET) {
    std::lock_guard<std::mutex> lock(mu_);
    EndAllSessions();
    state_ = MigState::kRunning;
    return 0;
  }
  return ErrnoStatus(ENOTTY, "ioctl on VFIO device");
}

Result<int> EmulatedVfioDevice::Feature(vfio_device_feature* f) {
  if (f == nullptr) return ErrnoStatus(EFAULT, "VFIO_DEVICE_FEATURE");
  if (f->argsz < sizeof(vfio_device_feature)) {
    return ErrnoStatus(EINVAL, "VFIO_DEVICE_FEATURE: argsz " +
                                   std::to_string(f->argsz) + " < 8");
  }
  if (f->flags & ~(VFIO_DEVICE_FEATURE_MASK | kFeatureOps)) {
    return ErrnoStatus(EINVAL, "VFIO_DEVICE_FEATURE: unknown flag bits");
  }
  if (!(f->flags & VFIO_DEVICE_FEATURE_PROBE) &&
      (f->flags & VFIO_DEVICE_FEATURE_GET) &&
      (f->flags & VFIO_DEVICE_FEATURE_SET)) {
    return ErrnoStatus(EINVAL, "VFIO_DEVICE_FEATURE: GET and SET together");
  }
  const uint32_t flags = f->flags;
  const uint64_t payload = f->argsz - sizeof(vfio_device_feature);
  void* data = f->data;
  const bool migration = options_.migration_flags != 0;
  switch (flags & VFIO_DEVICE_FEATURE_MASK) {
    case VFIO_DEVICE_FEATURE_MIGRATION: {
      if (!migration) return ErrnoStatus(ENOTTY, "MIGRATION");
      CONVERGE_ASSIGN_OR_RETURN(
          int go, CheckFeature("MIGRATION", flags, payload,
                               VFIO_DEVICE_FEATURE_GET,
                               sizeof(vfio_device_feature_migration)));
      if (go) {
        static_cast<vfio_device_feature_migration*>(data)->flags =
            options_.migration_flags;
      }
      return 0;
    }
    case VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE: {
      if (!migration) return ErrnoStatus(ENOTTY, "MIG_DEVICE_STATE");
      CONVERGE_ASSIGN_OR_RETURN(
          int go, CheckFeature("MIG_DEVICE_STATE", flags, payload,
                               VFIO_DEVICE_FEATURE_GET |
                                   VFIO_DEVICE_FEATURE_SET,
                               sizeof(vfio_device_feature_mig_state)));
      if (!go) return 0;
      return MigDeviceState(flags, data);
    }
    case VFIO_DEVICE_FEATURE_DMA_LOGGING_START: {
      if (!options_.dma_logging) return ErrnoStatus(ENOTTY, "DMA_LOGGING");
      CONVERGE_ASSIGN_OR_RETURN(
          int go,
          CheckFeature("DMA_LOGGING_START", flags, payload,
                       VFIO_DEVICE_FEATURE_SET,
                       sizeof(vfio_device_feature_dma_logging_control)));
      if (!go) return 0;
      auto* control =
          static_cast<vfio_device_feature_dma_logging_control*>(data);
      std::lock_guard<std::mutex> lock(mu_);
      CONVERGE_RETURN_IF_ERROR(dma_log_.Start(
          *control, reinterpret_cast<const vfio_device_feature_dma_logging_range*>(
                        control->ranges)));
      return 0;
    }
    case VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP: {
      if (!options_.dma_logging) return ErrnoStatus(ENOTTY, "DMA_LOGGING");
      CONVERGE_ASSIGN_OR_RETURN(
          int go, CheckFeature("DMA_LOGGING_STOP", flags, payload,
                               VFIO_DEVICE_FEATURE_SET, 0));
      if (!go) return 0;
      std::lock_guard<std::mutex> lock(mu_);
      dma_log_.Stop();
      return 0;
    }
    case VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT: {
      if (!options_.dma_logging) return ErrnoStatus(ENOTTY, "DMA_LOGGING");
      CONVERGE_ASSIGN_OR_RETURN(
          int go,
          CheckFeature("DMA_LOGGING_REPORT", flags, payload,
                       VFIO_DEVICE_FEATURE_GET,
                       sizeof(vfio_device_feature_dma_logging_report)));
      if (!go) return 0;
      std::lock_guard<std::mutex> lock(mu_);
      CONVERGE_RETURN_IF_ERROR(dma_log_.Report(
          *static_cast<vfio_device_feature_dma_logging_report*>(data)));
      return 0;
    }
    case VFIO_DEVICE_FEATURE_MIG_DATA_SIZE: {
      if (!migration || !options_.mig_data_size) {
        return ErrnoStatus(ENOTTY, "MIG_DATA_SIZE");
      }
      CONVERGE_ASSIGN_OR_RETURN(
          int go, CheckFeature("MIG_DATA_SIZE", flags, payload,
                               VFIO_DEVICE_FEATURE_GET,
                               sizeof(vfio_device_feature_mig_data_size)));
      if (!go) return 0;
      std::lock_guard<std::mutex> lock(mu_);
      Accrue();
      uint64_t bytes = options_.stop_copy_bytes + StreamTrailer::kBytes;
      if (saving_ != nullptr) {
        uint64_t unread = saving_->unread().total_bytes;
        bytes = saving_->finishing() ? unread
                                     : bytes + unread + accrued_dirty_bytes_;
      }
      static_cast<vfio_device_feature_mig_data_size*>(data)->stop_copy_length =
          bytes;
      return 0;
    }
    case VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2: {
      if (!migration || !options_.precopy_info_v2) {
        return ErrnoStatus(ENOTTY, "MIG_PRECOPY_INFOv2");
      }
      CONVERGE_ASSIGN_OR_RETURN(
          int go, CheckFeature("MIG_PRECOPY_INFOv2", flags, payload,
                               VFIO_DEVICE_FEATURE_SET, 0));
      if (!go) return 0;
      std::lock_guard<std::mutex> lock(mu_);
      precopy_v2_enabled_ = true;
      return 0;
    }
    default:
      return ErrnoStatus(ENOTTY, "VFIO_DEVICE_FEATURE " +
                                     std::to_string(flags &
                                                    VFIO_DEVICE_FEATURE_MASK));
  }
}

Result<int> EmulatedVfioDevice::MigDeviceState(uint32_t flags, void* data) {
  auto* mig = static_cast<vfio_device_feature_mig_state*>(data);
  std::lock_guard<std::mutex> lock(mu_);
  if (flags & VFIO_DEVICE_FEATURE_GET) {
    mig->device_state = static_cast<uint32_t>(state_);
    mig->data_fd = -1;
    return 0;
  }
  Result<int> fd = SetState(static_cast<MigState>(mig->device_state));
  mig->data_fd = fd.ok() ? *fd : -1;
  if (!fd.ok()) return fd.status();
  return 0;
}

Result<int> EmulatedVfioDevice::SetState(MigState target) {
  int data_fd = -1;
  while (state_ != target) {
    Result<MigState> next =
        MigNextState(state_, target, options_.migration_flags);
    if (!next.ok()) {
      if (next.status().sys_errno() == EDEADLK) {
        ++hang_attempts_;
        std::fprintf(stderr, "EmulatedVfioDevice: %s\n",
                     next.status().ToString().c_str());
      }
      return next.status();
    }
    CONVERGE_ASSIGN_OR_RETURN(int fd, Step(*next));
    if (fd >= 0) data_fd = fd;
  }
  return data_fd;
}

Result<int> EmulatedVfioDevice::Step(MigState next) {
  const MigState from = state_;
  for (auto it = arc_failures_.begin(); it != arc_failures_.end(); ++it) {
    if (it->from == from && it->to == next) {
      ArcFailure failure = *it;
      arc_failures_.erase(it);
      if (failure.enter_error) {
        EndAllSessions();
        state_ = MigState::kError;
      }
      return ErrnoStatus(failure.sys_errno,
                         "migration arc " + ArcName(from, next) +
                             " (injected failure)");
    }
  }
  int fd = -1;
  using S = MigState;
  if (MigArcOpensDataFd(from, next) && next == S::kResuming) {
    CONVERGE_ASSIGN_OR_RETURN(resuming_,
                              ResumingSession::Start(options_.pipe_bytes));
    resuming_id_ = next_session_id_++;
    fd = InstallDataFd(resuming_->write_fd(), resuming_id_);
  } else if (MigArcOpensDataFd(from, next)) {
    CONVERGE_ASSIGN_OR_RETURN(fd, OpenSaving(next != S::kStopCopy));
  } else if (IsPreCopy(from) && next == S::kStopCopy) {
    Accrue();
    saving_->Publish(accrued_dirty_bytes_, SegmentKind::kDirty);
    accrued_dirty_bytes_ = 0;
    saving_->Publish(options_.stop_copy_bytes, SegmentKind::kStopCopy);
    saving_->Finish();
  } else if ((from == S::kStopCopy && next == S::kStop) ||
             (from == S::kPreCopy && next == S::kRunning) ||
             (from == S::kPreCopyP2p && next == S::kRunningP2p)) {
    EndSaving();
  } else if (from == S::kResuming && next == S::kStop) {
    Status verdict = resuming_->Finish();
    restored_ok_ = verdict.ok();
    restored_hash_ = resuming_->payload_hash();
    restored_bytes_ = resuming_->bytes_received();
    resuming_.reset();
    resuming_id_ = 0;
    if (!verdict.ok()) {
      // The device cannot run with the partial state it was given.
      state_ = S::kError;
      return ErrnoStatus(EINVAL, "migration arc RESUMING -> STOP: " +
                                     verdict.message());
    }
  }
  arcs_.emplace_back(from, next);
  state_ = next;
  return fd;
}

int EmulatedVfioDevice::InstallDataFd(int fd, uint64_t session_id) {
  kernel_.InstallAt(fd,
                    std::make_shared<DataFdObject>(weak_from_this(), session_id));
  return fd;
}

Result<int> EmulatedVfioDevice::OpenSaving(bool precopy) {
  CONVERGE_ASSIGN_OR_RETURN(
      saving_, SavingSession::Start(content_, options_.pipe_bytes,
                                    options_.zero_copy_saving));
  saving_id_ = next_session_id_++;
  accrued_dirty_bytes_ = 0;
  accrual_fraction_ = 0;
  last_accrual_ns_ = NowNs();
  reinit_pending_ = false;
  if (precopy) {
    saving_->Publish(options_.precopy_initial_bytes, SegmentKind::kInitial);
  } else {
    saving_->Publish(options_.stop_copy_bytes, SegmentKind::kStopCopy);
    saving_->Finish();
  }
  return InstallDataFd(saving_->read_fd(), saving_id_);
}

void EmulatedVfioDevice::EndSaving() {
  if (saving_ == nullptr) return;
  saving_->End();
  last_stream_bytes_ = saving_->payload_bytes_written();
  last_stream_hash_ = saving_->payload_hash();
  last_stream_complete_ = saving_->complete();
  saving_.reset();
  saving_id_ = 0;
  accrued_dirty_bytes_ = 0;
}

void EmulatedVfioDevice::EndAllSessions() {
  EndSaving();
  if (resuming_ != nullptr) {
    (void)resuming_->Finish();
    resuming_.reset();
    resuming_id_ = 0;
  }
  reinit_pending_ = false;
}

void EmulatedVfioDevice::Accrue() {
  uint64_t now = NowNs();
  if (saving_ == nullptr || !IsPreCopy(state_) || saving_->finishing()) {
    last_accrual_ns_ = now;
    return;
  }
  uint64_t dt_ns = now > last_accrual_ns_ ? now - last_accrual_ns_ : 0;
  last_accrual_ns_ = now;
  accrual_fraction_ +=
      static_cast<double>(options_.dirty_bytes_per_sec) * 1e-9 *
      static_cast<double>(dt_ns);
  uint64_t whole = static_cast<uint64_t>(accrual_fraction_);
  accrual_fraction_ -= static_cast<double>(whole);
  accrued_dirty_bytes_ =
      std::min(options_.max_dirty_bytes, accrued_dirty_bytes_ + whole);
}

Result<int> EmulatedVfioDevice::PrecopyInfo(uint64_t session_id,
                                            vfio_precopy_info* info) {
  if (info == nullptr) return ErrnoStatus(EFAULT, "VFIO_MIG_GET_PRECOPY_INFO");
  if (info->argsz < sizeof(vfio_precopy_info)) {
    return ErrnoStatus(EINVAL, "VFIO_MIG_GET_PRECOPY_INFO: argsz " +
                                   std::to_string(info->argsz) + " < 24");
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (!IsPreCopy(state_)) {
    return ErrnoStatus(EINVAL, "VFIO_MIG_GET_PRECOPY_INFO in state " +
                                   std::string(MigStateName(state_)));
  }
  if (saving_ == nullptr || session_id != saving_id_) {
    return ErrnoStatus(ENODEV,
                       "VFIO_MIG_GET_PRECOPY_INFO: data_fd session ended");
  }
  Accrue();
  saving_->Publish(accrued_dirty_bytes_, SegmentKind::kDirty);
  accrued_dirty_bytes_ = 0;
  SavingSession::Unread unread = saving_->unread();
  info->flags = 0;
  if (precopy_v2_enabled_ && reinit_pending_) {
    info->flags = VFIO_PRECOPY_INFO_REINIT;
    reinit_pending_ = false;
  }
  info->initial_bytes = unread.initial_bytes;
  info->dirty_bytes = unread.dirty_bytes;
  return 0;
}

Status EmulatedVfioDevice::Dma(uint64_t iova, uint64_t length_bytes) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (state_ != MigState::kRunning && state_ != MigState::kRunningP2p &&
        !IsPreCopy(state_)) {
      return FailedPreconditionError("device DMA in state " +
                                     std::string(MigStateName(state_)));
    }
    dma_log_.Record(iova, length_bytes);
  }
  kernel_.NotifyDma(iova, length_bytes);
  return OkStatus();
}

void EmulatedVfioDevice::DirtyState(uint64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  Accrue();
  accrued_dirty_bytes_ =
      std::min(options_.max_dirty_bytes, accrued_dirty_bytes_ + bytes);
}

void EmulatedVfioDevice::Reinitialize(uint64_t initial_bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  if (saving_ == nullptr || !IsPreCopy(state_)) return;
  if (precopy_v2_enabled_) {
    saving_->ReclassifyUnreadAsInitial();
    accrued_dirty_bytes_ = 0;
    saving_->Publish(initial_bytes, SegmentKind::kInitial);
    reinit_pending_ = true;
  } else {
    saving_->Publish(initial_bytes, SegmentKind::kDirty);
  }
}

void EmulatedVfioDevice::InjectArcFailure(MigState from, MigState to,
                                          int sys_errno, bool enter_error) {
  std::lock_guard<std::mutex> lock(mu_);
  arc_failures_.push_back(ArcFailure{from, to, sys_errno, enter_error});
}

void EmulatedVfioDevice::InjectDmaLogReportError(int sys_errno) {
  std::lock_guard<std::mutex> lock(mu_);
  dma_log_.InjectReportError(sys_errno);
}

MigState EmulatedVfioDevice::state() const {
  std::lock_guard<std::mutex> lock(mu_);
  return state_;
}

std::vector<std::pair<MigState, MigState>> EmulatedVfioDevice::arcs() const {
  std::lock_guard<std::mutex> lock(mu_);
  return arcs_;
}

uint64_t EmulatedVfioDevice::hang_attempts() const {
  std::lock_guard<std::mutex> lock(mu_);
  return hang_attempts_;
}

uint64_t EmulatedVfioDevice::stream_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return saving_ ? saving_->payload_bytes_written() : last_stream_bytes_;
}

uint64_t EmulatedVfioDevice::stream_hash() const {
  std::lock_guard<std::mutex> lock(mu_);
  return saving_ ? saving_->payload_hash() : last_stream_hash_;
}

bool EmulatedVfioDevice::stream_complete() const {
  std::lock_guard<std::mutex> lock(mu_);
  return saving_ ? saving_->complete() : last_stream_complete_;
}

bool EmulatedVfioDevice::restored_ok() const {
  std::lock_guard<std::mutex> lock(mu_);
  return restored_ok_;
}

uint64_t EmulatedVfioDevice::restored_hash() const {
  std::lock_guard<std::mutex> lock(mu_);
  return restored_hash_;
}

uint64_t EmulatedVfioDevice::restored_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return restored_bytes_;
}

bool EmulatedVfioDevice::dma_logging_active() const {
  std::lock_guard<std::mutex> lock(mu_);
  return dma_log_.active();
}

uint64_t EmulatedVfioDevice::dma_log_page_size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return dma_log_.page_size();
}

uint64_t EmulatedVfioDevice::dma_log_dirty_pages() const {
  std::lock_guard<std::mutex> lock(mu_);
  return dma_log_.dirty_pages();
}

}  // namespace converge::sim
