// PrecopyEngine: the source side of a pre-copy live migration, driven by a
// VMM once per iteration (shared/design.md "Data flow of one pre-copy
// iteration"):
//
//   auto engine = PrecopyEngine::Create(kernel, clock, transport, options);
//   engine->AddRegion(...); engine->AddSource(...); engine->AddDevice(...);
//   engine->Start();
//   for (;;) {
//     engine->Sync();
//     if (engine->ShouldSwitchover().action != Action::kContinue) break;
//     engine->Iterate();
//   }
//   engine->Switchover(pause_vcpus);   // or Cancel()
//
// Start() writes the stream header (layout and device list), starts every
// dirty source (the first pass treats all RAM as dirty) and moves devices
// that support it RUNNING -> PRE_COPY. Sync() harvests the sources and each
// device's PRECOPY_INFO and feeds the Estimator. Iterate() sends device
// data (every data_fd at once through io_uring) and dirty RAM (through the
// RamChannel, re-arming the sources one chunk ahead of the send), framed by
// one StreamWriter, within the policy's per-iteration budget. Switchover()
// stops devices (P2P states first), lets the caller pause the vCPUs, sends
// the rest and ends the stream. Cancel() at any point leaves the source
// running with nothing lost: logging stopped, devices back in RUNNING,
// data fds closed.
//
// Time: every duration and deadline is read from the injected Clock, so the
// engine runs unchanged on sim::VirtualClock.
//
// Errors: a failed Sync/Iterate leaves the engine usable for Cancel() (and
// a failing dirty source never loses bits: its window is resent). A failed
// Switchover() before the devices reached STOP_COPY rolls back like
// Cancel() and calls the resume hook; after that the migration is lost but
// the source can still resume (devices are returned to RUNNING).
//
// Signals: a destination device that closed its RESUMING pipe makes writes
// to it raise SIGPIPE; see engine/destination.h.
//
// Thread-safety: not thread-safe. One thread calls every method (Cancel()
// included); the engine runs its own worker threads (compression, io_uring)
// inside the calls. Borrowed objects (Kernel, Clock, Transport, sources,
// device fds, guest memory, a custom RamChannel) must outlive the engine.

#ifndef CONVERGE_ENGINE_PRECOPY_ENGINE_H_
#define CONVERGE_ENGINE_PRECOPY_ENGINE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "engine/device_session.h"
#include "engine/estimate.h"
#include "engine/estimator.h"
#include "engine/migration_stats.h"
#include "engine/policy.h"
#include "engine/ram_channel.h"
#include "io/codec.h"
#include "io/device_drain.h"
#include "io/guest_memory.h"
#include "io/transport.h"
#include "iommu/dirty_source.h"
#include "iommu/kernel.h"

namespace converge {

struct EngineOptions {
  // Downtime limit, bandwidth cap, iteration/time limits, switchover-ack,
  // per-iteration budget. Validated by Create().
  PolicyOptions policy;
  // Everything the estimator does not take from the policy (windows,
  // smoothing, stall k, fixed-cost priors). The limit, cap and ack fields
  // are overwritten from `policy`.
  Estimator::Options estimator;
  // Compression of RAM and device records. lz4 costs ~1.5 ns/byte/core.
  CodecOptions codec;
  // The real RAM channel's record size and pipeline depth (ignored when a
  // custom ram_channel is given).
  RamSenderChannelOptions ram;
  // Device data_fd reads: chunk size and buffers per device.
  DeviceDrainOptions drain;
  // Device FSM recovery on a failed transition.
  DeviceSession::Options device;
  // Bytes per bit of the RAM dirty bitmaps (and the stream's page size).
  uint64_t page_bytes = 4096;
  // RAM pages per harvest window of the tracker (see DirtyTracker).
  uint64_t harvest_chunk_pages = uint64_t{1} << 18;
  // Sources are re-armed (KVM CLEAR_DIRTY_LOG) this many bytes of RAM at a
  // time, just before that chunk is sent; QEMU uses 1 GiB. Smaller chunks
  // catch rewrites sooner and cost more kernel calls. Rounded up to 64
  // pages; 0 re-arms all RAM at once before each send.
  uint64_t rearm_chunk_bytes = uint64_t{1} << 30;
  // k for the writable working set: pages harvested in each of the last k
  // syncs (a bitmap AND). Each costs one RAM bitmap of memory.
  uint32_t wws_syncs = 3;
  // Move devices with PRE_COPY support to PRE_COPY at Start() (off: they
  // stay RUNNING and send everything in STOP_COPY).
  bool device_precopy = true;
  // The RAM data plane; null = MakeRamSenderChannel over the regions.
  // Borrowed; must outlive the engine.
  RamChannel* ram_channel = nullptr;
  // Called at the end of every Iterate() with its record (and never from
  // another thread).
  std::function<void(const IterationStats&)> progress;
};

// Who writes the pages a source reports. vCPU writes slow down under a
// throttle; device DMA does not (the estimator's throttle suggestion).
enum class SourceKind : uint8_t { kVcpu, kDma };

enum class EnginePhase : uint8_t {
  kConfiguring,  // Create() until Start()
  kPrecopy,      // Start() until Switchover() or Cancel()
  kSwitchover,   // inside Switchover()
  kCompleted,    // the stream ended; the destination may resume
  kCancelled,    // Cancel() (or a rolled-back switchover); source running
  kFailed,       // Switchover() failed after STOP_COPY; Cancel() still
                 // returns devices to RUNNING
};
std::string_view EnginePhaseName(EnginePhase phase);

// What Sync() measured.
struct SyncStats {
  uint64_t now_ns = 0;
  uint64_t sync_ns = 0;           // harvest + PRECOPY_INFO
  uint64_t dirtied_pages = 0;     // union harvested by this sync
  uint64_t ram_pending_pages = 0; // dirty after it (incl. not yet sent)
  uint64_t wws_pages = 0;         // dirty in each of the last k syncs
  uint64_t device_pending_bytes = 0;
  // A failing dirty source does not fail Sync(): its windows are resent
  // (pending) and its first error is here.
  Status source_error;
};

// The caller's side of the stop-and-copy phase.
struct SwitchoverHooks {
  // Stops the vCPUs (required). Runs after every device reached its P2P
  // state; an error aborts the switchover (rolled back like Cancel()).
  std::function<Status()> pause_vcpus;
  // Resumes the vCPUs when a switchover fails after pause_vcpus returned
  // (optional).
  std::function<void()> resume_vcpus;
};

class PrecopyEngine {
 public:
  // Validates options (the error names the bad field). Nothing is started.
  [[nodiscard]] static Result<std::unique_ptr<PrecopyEngine>> Create(
      Kernel& kernel, Clock& clock, Transport& transport,
      EngineOptions options);

  PrecopyEngine(const PrecopyEngine&) = delete;
  PrecopyEngine& operator=(const PrecopyEngine&) = delete;
  // Cancels a migration still in progress.
  ~PrecopyEngine();

  // Adds guest RAM region (stream region i = i-th added). `host` may be
  // null only with a custom RamChannel. REQUIRES: kConfiguring; gpa and
  // size page aligned, size > 0, disjoint from earlier regions.
  [[nodiscard]] Status AddRegion(const GuestRegion& region);
  // Adds a dirty source over every region (KVM log/ring, IOMMU, DMA
  // logging, sim::ModelDirtySource). Borrowed. REQUIRES: kConfiguring.
  [[nodiscard]] Status AddSource(DirtySource* source,
                                 SourceKind kind = SourceKind::kVcpu);
  // Adds a VFIO device (borrowed fd, in RUNNING) and discovers it; its
  // stream device id is the number of devices added before it (0, 1, ...).
  // Errors: a device without migration support, a duplicate name.
  // REQUIRES: kConfiguring.
  [[nodiscard]] Result<uint32_t> AddDevice(std::string name, int device_fd);

  // Writes the stream header, starts tracking (all RAM dirty), moves
  // devices to PRE_COPY. On failure everything started is undone (devices
  // RUNNING, logging stopped) and the engine is kCancelled.
  // REQUIRES: kConfiguring, at least one region.
  [[nodiscard]] Status Start();

  // Harvests every source into the RAM bitmaps, refreshes each device's
  // PRECOPY_INFO (and MIG_DATA_SIZE), and feeds the estimator.
  // REQUIRES: kPrecopy.
  [[nodiscard]] Result<SyncStats> Sync();

  // The estimator's view as of the last Sync().
  Estimate CurrentEstimate() const;

  // One pre-copy iteration: device data available now, then dirty RAM,
  // within the policy's per-iteration budget (bytes or ms, whichever comes
  // first). Writes an iteration mark. REQUIRES: kPrecopy.
  [[nodiscard]] Result<IterationStats> Iterate();

  // The policy's decision on the current estimate and progress, with its
  // reason. Remembered as the decision a later Switchover() reports.
  SwitchoverDecision ShouldSwitchover();

  // The stop-and-copy phase (see the class comment). Returns its stats;
  // the predicted downtime is the estimate at the last ShouldSwitchover()
  // (or now, if it was never asked). REQUIRES: kPrecopy.
  [[nodiscard]] Result<SwitchoverStats> Switchover(
      const SwitchoverHooks& hooks);
  [[nodiscard]] Result<SwitchoverStats> Switchover(
      std::function<Status()> pause_vcpus) {
    return Switchover(SwitchoverHooks{std::move(pause_vcpus), nullptr});
  }

  // Feeds back the destination's apply time (its ready timestamp minus
  // SwitchoverStats::last_byte_ns, on the same clock) as a fixed cost.
  void RecordDestinationApply(uint64_t apply_ns);

  // Abandons the migration at any phase: stops logging, returns devices to
  // RUNNING, closes data fds. The transport is left open (the caller
  // closes it; the destination sees a stream without end). Idempotent;
  // tries every step and returns the first error.
  Status Cancel();

  EnginePhase phase() const;
  uint64_t iterations() const;
  // Fixed costs measured so far (ns; 0 = not measured), to seed the
  // priors of the next migration's Estimator::Options.
  uint64_t measured_fixed_cost_ns(FixedCost cost) const;
  // Device sessions in AddDevice() order (state, data_fd, capabilities).
  const DeviceSession& device(uint32_t id) const;
  size_t num_devices() const;

 private:
  class Rep;
  explicit PrecopyEngine(std::unique_ptr<Rep> rep);
  std::unique_ptr<Rep> rep_;
};

}  // namespace converge

#endif  // CONVERGE_ENGINE_PRECOPY_ENGINE_H_
