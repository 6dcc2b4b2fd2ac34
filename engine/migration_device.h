// MigrationDevice: moves one VFIO device through the migration FSM via the
// Kernel seam (VFIO_DEVICE_FEATURE with MIG_DEVICE_STATE), and recovers
// when a SET fails.
//
// A request is checked against the user-space FSM (engine/migration_fsm.h)
// first, so invalid requests and the two arcs that hang the kernel fail
// without an ioctl. A SET is one ioctl to the final target; the kernel walks
// the path. When it fails the device may be in any state along that path,
// so the state is read back (GET) and the recovery policy applied: return
// to RUNNING where the path allows, VFIO_DEVICE_RESET when the device is in
// ERROR. The returned error names the original failure and the recovery
// outcome; last_failure() has the same in fields.
//
// The device fd is borrowed: the caller keeps it open for the lifetime of
// this object.
//
// Thread-safety: not thread-safe; one thread drives a device at a time.

#ifndef CONVERGE_ENGINE_MIGRATION_DEVICE_H_
#define CONVERGE_ENGINE_MIGRATION_DEVICE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "base/status.h"
#include "engine/migration_fsm.h"
#include "iommu/kernel.h"

namespace converge {

enum class RecoveryOutcome : uint8_t {
  kNone,                // the SET did not fail, or nothing was attempted
  kAlreadyRunning,      // the failed SET left the device in RUNNING
  kReturnedToRunning,   // a second SET brought the device back to RUNNING
  kReset,               // the device was in ERROR; reset brought it back
  kLeftInPlace,         // the policy did not allow a recovery step
  kFailed,              // recovery was attempted and failed
};

std::string_view RecoveryOutcomeName(RecoveryOutcome outcome);

// What happened on the last failed SET.
struct SetFailure {
  MigState from = MigState::kRunning;   // state before the SET
  MigState target = MigState::kRunning;  // state requested
  Status error;                          // the SET's own error
  // The state read back after the failure; nullopt when the GET failed too.
  std::optional<MigState> state_after;
  RecoveryOutcome recovery = RecoveryOutcome::kNone;
  Status recovery_error;                 // why recovery failed, if it did
  // The state once recovery finished; nullopt when unknown.
  std::optional<MigState> final_state;
};

class MigrationDevice {
 public:
  struct Options {
    // On a failed SET, move the device back to RUNNING (one more SET; the
    // path there is never refused). Off leaves the device where it stopped.
    bool return_to_running = true;
    // When the device is left in ERROR, VFIO_DEVICE_RESET it (back to
    // RUNNING). A reset discards the device's internal state.
    bool reset_on_error = true;
  };

  // `flags` are the device's VFIO_MIGRATION_* flags; `name` appears in
  // every message. REQUIRES: device_fd >= 0.
  MigrationDevice(Kernel& kernel, int device_fd, uint64_t flags,
                  std::string name, Options options);
  MigrationDevice(Kernel& kernel, int device_fd, uint64_t flags,
                  std::string name)
      : MigrationDevice(kernel, device_fd, flags, std::move(name),
                        Options()) {}
  MigrationDevice(const MigrationDevice&) = delete;
  MigrationDevice& operator=(const MigrationDevice&) = delete;

  // GET of MIG_DEVICE_STATE; the result becomes the cached state.
  [[nodiscard]] Result<MigState> GetState();

  // Moves the device to `target` with one SET (reading the state first if
  // it is not known). Returns the data_fd the SET opened (an invalid
  // KernelFd when it opened none). A request the FSM rejects fails before
  // any ioctl; a failed SET is recovered as described above.
  [[nodiscard]] Result<KernelFd> SetState(MigState target);

  // VFIO_DEVICE_RESET, then GET. Returns the state after the reset.
  [[nodiscard]] Result<MigState> Reset();

  // The last state read or set; nullopt before the first GET or after a
  // failure left it unknown.
  std::optional<MigState> state() const { return state_; }
  uint64_t flags() const { return flags_; }
  const std::string& name() const { return name_; }
  int device_fd() const { return device_fd_; }
  // REQUIRES: a SET has failed since construction.
  const SetFailure& last_failure() const { return last_failure_; }

 private:
  // One SET ioctl; returns the raw data_fd (-1 for none).
  Result<int> IssueSet(MigState target);
  // Applies the recovery policy after a failed SET and builds the error.
  Status Recover(MigState from, MigState target, Status error);

  Kernel& kernel_;
  const int device_fd_;
  const uint64_t flags_;
  const std::string name_;
  const Options options_;
  std::optional<MigState> state_;
  SetFailure last_failure_;
};

}  // namespace converge

#endif  // CONVERGE_ENGINE_MIGRATION_DEVICE_H_
