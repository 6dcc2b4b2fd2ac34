// Destination: the receiving side of a PrecopyEngine migration. It opens
// every destination device's RESUMING session (STOP -> RESUMING through
// MigrationDevice; RUNNING devices are stopped first), maps the stream's
// device ids to their data_fds, runs the Receiver (which verifies every
// record before applying it: RAM into guest memory, device bytes in order
// into each data_fd), then moves each device RESUMING -> STOP, which is
// where the driver validates the state it was given. It reports when the
// destination is ready (a reading of the injected Clock), so the measured
// downtime of a migration is ready_ns - SwitchoverStats::paused_ns when
// both sides share the clock.
//
// Device ids: the i-th AddDevice() here receives the stream's device i
// (the source's i-th PrecopyEngine::AddDevice()). The stream header's
// device names must match, or Run() fails naming both.
//
// Signals: writing to a RESUMING pipe whose device closed it would raise
// SIGPIPE. Run() blocks SIGPIPE on its own thread while it runs, and
// consumes one that became pending, so the write fails with EPIPE (an
// error naming the device) instead of killing the process. Other threads'
// signal masks are untouched.
//
// Failure: on any error every RESUMING session is ended (RESUMING -> STOP;
// a device that rejects its partial state is recovered by the
// DeviceSession::Options policy, back to RUNNING or reset) and the error
// names the device or the record; guest memory may hold a partial image.
//
// Thread-safety: not thread-safe; Run() blocks its thread. Borrowed
// objects (Kernel, Clock, Transport, guest memory, device fds) must
// outlive the Destination.

#ifndef CONVERGE_ENGINE_DESTINATION_H_
#define CONVERGE_ENGINE_DESTINATION_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "engine/device_session.h"
#include "io/guest_memory.h"
#include "io/receiver.h"
#include "io/transport.h"
#include "iommu/kernel.h"

namespace converge {

struct DestinationOptions {
  // Progress callback and its period (runs on Run()'s thread).
  ReceiverOptions receiver;
  // Device FSM recovery on a failed transition.
  DeviceSession::Options device;
};

struct DestinationResult {
  ReceiveSummary summary;        // what the Receiver applied and verified
  uint64_t start_ns = 0;         // Run() began
  uint64_t stream_end_ns = 0;    // end-of-stream verified and applied
  uint64_t ready_ns = 0;         // every device validated (RESUMING -> STOP)
  uint64_t device_validate_ns = 0;  // ready_ns - stream_end_ns
};

class Destination {
 public:
  [[nodiscard]] static Result<std::unique_ptr<Destination>> Create(
      Kernel& kernel, Clock& clock, Transport& transport,
      DestinationOptions options = {});

  Destination(const Destination&) = delete;
  Destination& operator=(const Destination&) = delete;
  ~Destination();  // closes data fds; devices left where they are

  // Adds a destination RAM region (stream region i = i-th added); its GPA
  // and size must equal the stream's. REQUIRES: before Prepare().
  [[nodiscard]] Status AddRegion(const GuestRegion& region);
  // Adds a destination device (borrowed fd) and discovers it. Returns its
  // stream device id. REQUIRES: before Prepare().
  [[nodiscard]] Result<uint32_t> AddDevice(std::string name, int device_fd);

  // Moves every device to RESUMING (through STOP). Run() calls it if the
  // caller did not; calling it early takes the device setup out of the
  // downtime. On failure every device is returned to STOP.
  [[nodiscard]] Status Prepare();

  // Receives the whole stream, then validates every device. Succeeds only
  // if the stream verified to its end and every device accepted its state.
  [[nodiscard]] Result<DestinationResult> Run();

  const DeviceSession& device(uint32_t id) const;
  size_t num_devices() const;

 private:
  class Rep;
  explicit Destination(std::unique_ptr<Rep> rep);
  std::unique_ptr<Rep> rep_;
};

}  // namespace converge

#endif  // CONVERGE_ENGINE_DESTINATION_H_
