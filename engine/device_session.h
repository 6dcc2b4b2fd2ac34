// DeviceSession: one VFIO device taking part in a migration. It discovers
// what the device supports, moves it through the migration FSM
// (MigrationDevice), owns the data_fd of the current data session, and
// polls PRECOPY_INFO.
//
// The data_fd is opened by the arcs that return one (RUNNING -> PRE_COPY,
// RUNNING_P2P -> PRE_COPY_P2P, STOP -> STOP_COPY, STOP -> RESUMING), kept
// across PRE_COPY(_P2P) -> STOP_COPY (one saving session), and closed when
// the session ends (back to RUNNING or STOP), after a failed transition
// that left the device outside a session, and when the DeviceSession is
// destroyed.
//
// MoveDevicesToStop() moves several devices so that every device reaches
// RUNNING_P2P / PRE_COPY_P2P before any leaves it for STOP / STOP_COPY; if
// one fails, every device returns to RUNNING and the source keeps running.
//
// The device fd is borrowed and must outlive the session.
//
// Thread-safety: not thread-safe; one thread drives a session at a time.
// data_fd() may be handed to a reader thread while no transition runs.

#ifndef CONVERGE_ENGINE_DEVICE_SESSION_H_
#define CONVERGE_ENGINE_DEVICE_SESSION_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "base/status.h"
#include "engine/migration_device.h"
#include "engine/migration_fsm.h"
#include "iommu/kernel.h"

namespace converge {

struct DeviceCapabilities {
  uint64_t migration_flags = 0;  // VFIO_MIGRATION_*
  bool p2p = false;              // RUNNING_P2P (and PRE_COPY_P2P)
  bool pre_copy = false;         // PRE_COPY, PRECOPY_INFO
  bool dma_logging = false;      // features 6-8 (PROBE of 6)
  bool mig_data_size = false;    // feature 9
};

// VFIO_MIG_GET_PRECOPY_INFO.
struct DevicePrecopyInfo {
  uint64_t initial_bytes = 0;
  uint64_t dirty_bytes = 0;
  bool reinit = false;  // VFIO_PRECOPY_INFO_REINIT (7.1)
};

class DeviceSession {
 public:
  struct Options {
    // What a failed transition does to the device (migration_device.h).
    MigrationDevice::Options recovery;
  };

  // Discovers the device: MIGRATION flags (GET), DMA logging (PROBE of
  // feature 6), MIG_DATA_SIZE (PROBE of feature 9), and the current state.
  // A device without migration support is kNotSupported.
  [[nodiscard]] static Result<std::unique_ptr<DeviceSession>> Open(
      Kernel& kernel, int device_fd, std::string name, Options options);
  [[nodiscard]] static Result<std::unique_ptr<DeviceSession>> Open(
      Kernel& kernel, int device_fd, std::string name) {
    return Open(kernel, device_fd, std::move(name), Options());
  }

  DeviceSession(const DeviceSession&) = delete;
  DeviceSession& operator=(const DeviceSession&) = delete;
  ~DeviceSession() = default;  // closes the data_fd

  // Moves the device to `target`, adopting or closing the data_fd as the
  // path dictates. Errors as MigrationDevice::SetState().
  [[nodiscard]] Status Transition(MigState target);

  // PRECOPY_INFO on the data_fd. REQUIRES: none; kFailedPrecondition unless
  // the device is in PRE_COPY or PRE_COPY_P2P with a data_fd.
  [[nodiscard]] Result<DevicePrecopyInfo> QueryPrecopyInfo();

  // MIG_DATA_SIZE: the device's estimate of its STOP_COPY size, callable in
  // any state. kNotSupported when the device lacks feature 9.
  [[nodiscard]] Result<uint64_t> QueryStopCopyBytes();

  // Closes the data_fd now (the reader is done with it).
  [[nodiscard]] Status CloseDataFd() { return data_fd_.Reset(); }

  // The current data session's fd, or -1.
  int data_fd() const { return data_fd_.get(); }
  // The last known state; nullopt when a failure left it unknown.
  std::optional<MigState> state() const { return device_.state(); }
  const DeviceCapabilities& capabilities() const { return caps_; }
  const std::string& name() const { return device_.name(); }
  // The recovery report of the last failed transition.
  const SetFailure& last_failure() const { return device_.last_failure(); }

 private:
  DeviceSession(Kernel& kernel, int device_fd, std::string name,
                const DeviceCapabilities& caps, const Options& options);

  Kernel& kernel_;
  const int device_fd_;
  const DeviceCapabilities caps_;
  MigrationDevice device_;
  KernelFd data_fd_;
};

// Moves every device with P2P support to PRE_COPY_P2P (if it is
// pre-copying) or RUNNING_P2P; devices already there are left alone. If a
// transition fails, every device is returned to RUNNING and the error,
// naming the device, is returned. The first half of MoveDevicesToStop(),
// for a caller that pauses its vCPUs in between.
[[nodiscard]] Status MoveDevicesToP2p(std::span<DeviceSession* const> devices);

// Moves every session to `target` (STOP or STOP_COPY): first every device
// with P2P support to PRE_COPY_P2P (if it is pre-copying) or RUNNING_P2P,
// then each device to `target` (devices already in a P2P state count as
// quiesced). If any transition fails, every device is
// returned to RUNNING (data sessions closed) and the first error is
// returned, naming the device. REQUIRES: target is kStop or kStopCopy.
[[nodiscard]] Status MoveDevicesToStop(std::span<DeviceSession* const> devices,
                                       MigState target);

// Returns every session to RUNNING (Cancel). Tries all of them; returns the
// first error.
[[nodiscard]] Status ReturnDevicesToRunning(
    std::span<DeviceSession* const> devices);

}  // namespace converge

#endif  // CONVERGE_ENGINE_DEVICE_SESSION_H_
