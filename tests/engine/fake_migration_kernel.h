// A tiny test-local Kernel with one VFIO device that implements only the
// migration state feature (GET/SET of MIG_DEVICE_STATE), VFIO_DEVICE_RESET
// and closing data_fds, with failures injected per arc. It walks paths with
// PlanPath(), which migration_fsm_test.cc checks against the kernel's
// table; what it adds is the kernel's side of the ioctl (argsz, flags,
// data_fds, partial walks on failure).

#ifndef CONVERGE_TESTS_ENGINE_FAKE_MIGRATION_KERNEL_H_
#define CONVERGE_TESTS_ENGINE_FAKE_MIGRATION_KERNEL_H_

#include <cerrno>
#include <cstring>
#include <optional>
#include <set>
#include <vector>

#include "engine/migration_fsm.h"
#include "iommu/kernel.h"
#include "iommu/uapi_compat.h"

namespace converge::testing {

class FakeMigrationKernel final : public Kernel {
 public:
  static constexpr int kDeviceFd = 100;
  static constexpr int kFirstDataFd = 1000;

  FakeMigrationKernel(uint64_t flags, MigState initial)
      : flags_(flags), state_(initial) {}

  // The arc with this 0-based index within the next SET's path fails with
  // `error`, leaving the device in the state before it (or in ERROR).
  void FailArc(size_t arc_index, int error, bool to_error_state = false) {
    fail_arc_ = arc_index;
    fail_errno_ = error;
    fail_to_error_ = to_error_state;
  }
  void FailGets(bool fail) { fail_gets_ = fail; }
  void FailResets(bool fail) { fail_resets_ = fail; }

  MigState state() const { return state_; }
  void set_state(MigState s) { state_ = s; }
  int ioctls() const { return ioctls_; }
  const std::vector<MigState>& set_targets() const { return set_targets_; }
  int gets() const { return gets_; }
  int resets() const { return resets_; }
  const std::set<int>& open_data_fds() const { return open_data_fds_; }

 protected:
  Result<int> DoOpen(const std::string&, int) override {
    return ErrnoStatus(ENOENT, "open");
  }
  Status DoClose(int fd) override {
    if (open_data_fds_.erase(fd) == 0) return ErrnoStatus(EBADF, "close");
    return OkStatus();
  }
  Result<int> DoIoctl(int fd, unsigned long request, void* arg) override {
    ++ioctls_;
    if (fd != kDeviceFd) return ErrnoStatus(EBADF, "ioctl");
    if (request == VFIO_DEVICE_RESET) {
      ++resets_;
      if (fail_resets_) return ErrnoStatus(EIO, "reset");
      state_ = MigState::kRunning;
      return 0;
    }
    if (request != VFIO_DEVICE_FEATURE) return ErrnoStatus(ENOTTY, "ioctl");
    vfio_device_feature hdr;
    std::memcpy(&hdr, arg, sizeof hdr);
    uint32_t feature = hdr.flags & VFIO_DEVICE_FEATURE_MASK;
    uint32_t op = hdr.flags & ~VFIO_DEVICE_FEATURE_MASK;
    if (feature != VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE ||
        hdr.argsz != 16) {
      return ErrnoStatus(EINVAL, "feature");
    }
    vfio_device_feature_mig_state mig;
    auto* payload = static_cast<unsigned char*>(arg) + sizeof hdr;
    std::memcpy(&mig, payload, sizeof mig);
    if (op == VFIO_DEVICE_FEATURE_GET) {
      ++gets_;
      if (fail_gets_) return ErrnoStatus(EIO, "get");
      mig.device_state = static_cast<uint32_t>(state_);
      mig.data_fd = -1;
    } else if (op == VFIO_DEVICE_FEATURE_SET) {
      auto target = static_cast<MigState>(mig.device_state);
      set_targets_.push_back(target);
      Result<std::vector<MigState>> path = PlanPath(state_, target, flags_);
      if (!path.ok()) return ErrnoStatus(EINVAL, "set");
      mig.data_fd = -1;
      for (size_t i = 0; i < path->size(); ++i) {
        if (fail_arc_ && *fail_arc_ == i) {
          fail_arc_.reset();
          if (fail_to_error_) state_ = MigState::kError;
          return ErrnoStatus(fail_errno_, "set");
        }
        MigState next = (*path)[i];
        if (ArcOpensDataFd(state_, next)) {
          mig.data_fd = next_data_fd_++;
          open_data_fds_.insert(mig.data_fd);
        }
        state_ = next;
      }
    } else {
      return ErrnoStatus(EINVAL, "feature op");
    }
    std::memcpy(payload, &mig, sizeof mig);
    return 0;
  }
  Result<void*> DoMmap(size_t, int, int, int, off_t) override {
    return ErrnoStatus(ENODEV, "mmap");
  }
  Status DoMunmap(void*, size_t) override { return ErrnoStatus(EINVAL, "x"); }
  Result<size_t> DoRead(int, void*, size_t) override {
    return ErrnoStatus(EBADF, "read");
  }
  Result<size_t> DoWrite(int, const void*, size_t) override {
    return ErrnoStatus(EBADF, "write");
  }

 private:
  const uint64_t flags_;
  MigState state_;
  std::optional<size_t> fail_arc_;
  int fail_errno_ = EIO;
  bool fail_to_error_ = false;
  bool fail_gets_ = false;
  bool fail_resets_ = false;
  int ioctls_ = 0;
  int gets_ = 0;
  int resets_ = 0;
  int next_data_fd_ = kFirstDataFd;
  std::vector<MigState> set_targets_;
  std::set<int> open_data_fds_;
};

}  // namespace converge::testing

#endif  // CONVERGE_TESTS_ENGINE_FAKE_MIGRATION_KERNEL_H_
