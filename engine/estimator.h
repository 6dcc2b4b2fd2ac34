// Estimator: predicts the downtime of a pre-copy migration if it switched
// over now, the trend, and whether and when it will converge
// (docs/estimator.md has the model, with units).
//
// The engine feeds it once per iteration: RecordSync() after each dirty
// sync (pages per source, RAM pending, the writable-working-set count,
// every device's PRECOPY_INFO and MIG_DATA_SIZE), RecordSent() for what was
// sent, RecordFixedCost() when a fixed cost is measured. It does no I/O and
// reads no clock: time comes in with the samples, so synthetic traces give
// exact answers.
//
// Units: bytes, nanoseconds for clock values and durations (_ns),
// milliseconds for downtime (_ms); _bps is BYTES per second.
//
// Thread-safety: not thread-safe; the engine's iteration thread owns it.

#ifndef CONVERGE_ENGINE_ESTIMATOR_H_
#define CONVERGE_ENGINE_ESTIMATOR_H_

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "engine/convergence_model.h"
#include "engine/estimate.h"
#include "engine/rate_meter.h"

namespace converge {

// One device's numbers at a sync.
struct DeviceSample {
  uint64_t initial_bytes = 0;    // PRECOPY_INFO initial_bytes (0 if none)
  uint64_t dirty_bytes = 0;      // PRECOPY_INFO dirty_bytes
  uint64_t stop_copy_bytes = 0;  // MIG_DATA_SIZE stop_copy_length
};

// One dirty sync.
struct SyncSample {
  uint64_t now_ns = 0;   // clock when the harvest finished; increasing
  uint64_t sync_ns = 0;  // how long the harvest took
  uint64_t page_size_bytes = 4096;
  uint64_t ram_pending_pages = 0;  // dirty in the RAM bitmap after the sync
  uint64_t dirtied_pages = 0;      // union of what the sources reported
  uint64_t wws_pages = 0;  // dirty in each of the last k syncs (bitmap AND)
  std::vector<uint64_t> source_pages;  // per source, AddSource() order
  std::vector<DeviceSample> devices;   // per device, AddDevice() order
};

enum class FixedCost : uint8_t {
  kFinalSync,         // harvest with the vCPUs paused
  kDeviceStop,        // all devices to STOP_COPY (through the P2P states)
  kDrainLatency,      // device data_fd drain overhead beyond bandwidth
  kDestinationApply,  // last record received to destination ready
};
inline constexpr int kNumFixedCosts = 4;
std::string_view FixedCostName(FixedCost cost);

class Estimator {
 public:
  struct Options {
    // The downtime the verdict aims at. 300 ms is QEMU's default.
    double downtime_limit_ms = 300;
    // kReady also needs every device's initial_bytes at 0.
    bool switchover_ack_required = false;
    // Upper bound on the bandwidth used in predictions (the transport is
    // paced to it); 0 = none.
    double bandwidth_cap_bps = 0;
    // Bandwidth windows: at least this much send time per sample. Shorter
    // windows track the link faster but see cache and socket-buffer bursts.
    uint64_t bandwidth_window_ns = 100'000'000;
    // EWMA weight of the newest sample, for bandwidth and dirty rates.
    // Higher reacts faster to a change, lower rides out noise.
    double smoothing_weight = 0.5;
    // k: consecutive syncs a condition must hold before a stall, a never-
    // converging trend, a non-draining device or a perpetually-dirty source
    // is declared. Larger k is slower to call a stall and harder to fool.
    uint32_t stall_syncs = 3;
    // A sync "makes progress" when pending is below (1 - min_progress) of
    // what it was k syncs earlier; k syncs in a row without progress are a
    // stall. 0 only needs pending to fall at all, which a budgeted
    // iteration over a huge guest still does; higher calls a slow crawl a
    // stall sooner.
    double min_progress = 0;
    // Priors for fixed costs until measured. The final sync's prior is the
    // smoothed duration of the regular syncs once there is one.
    uint64_t prior_final_sync_ns = 2'000'000;
    uint64_t prior_device_stop_ns_per_device = 5'000'000;
    uint64_t prior_drain_latency_ns_per_device = 1'000'000;
    uint64_t prior_destination_apply_ns = 5'000'000;
    // Throttle suggestions keep the throttled dirty rate / bandwidth at or
    // below this, and never suggest more than max_throttle.
    double throttle_max_lambda = 0.9;
    double max_throttle = 0.99;
  };

  Estimator() : Estimator(Options()) {}
  // REQUIRES: Validate(options).ok().
  explicit Estimator(const Options& options);

  // Checks options; returns an error naming the bad field.
  [[nodiscard]] static Status Validate(const Options& options);

  // Registers a dirty source tracking `tracked_pages` RAM pages. `guest`
  // marks sources driven by vCPU writes (throttling slows them); device DMA
  // and IOMMU sources are not. Returns its index. REQUIRES: no sync yet.
  size_t AddSource(std::string name, uint64_t tracked_pages, bool guest);
  // Registers a device; returns its index. REQUIRES: no sync yet.
  size_t AddDevice(std::string name);

  // Feeds one sync. Errors (nothing recorded): sizes not matching the
  // registered sources/devices, a clock that did not advance, a source
  // reporting more pages than it tracks, a zero page size.
  [[nodiscard]] Status RecordSync(const SyncSample& sample);
  // Feeds `bytes` of pending state sent in `elapsed_ns` (raw page and
  // device bytes retired, so compression shows up as bandwidth).
  void RecordSent(uint64_t bytes, uint64_t elapsed_ns);
  // Records a measured fixed cost; later measurements are smoothed in.
  void RecordFixedCost(FixedCost cost, uint64_t ns);

  // The estimate as of the last sync.
  Estimate Current() const;

  const Options& options() const { return options_; }
  uint64_t syncs() const { return syncs_; }

 private:
  struct Source {
    std::string name;
    uint64_t tracked_pages;
    bool guest;
    Ewma rate_bps;
    uint64_t last_pages = 0;
    uint32_t all_dirty_streak = 0;  // consecutive syncs reporting everything
  };
  struct Device {
    std::string name;
    DeviceSample last;
    std::deque<uint64_t> initial_history;  // last k + 1 initial_bytes
  };

  // The model's inputs as of the last sync.
  struct Model {
    bool valid = false;  // two syncs and a bandwidth window
    bool fixed_measured = false;
    StopPhase phase;
    double lambda = 0;
    double budget = 0;        // largest pending that meets the limit
    double wws_bytes = 0;
    double ram_floor = 0;     // max(WWS, perpetually-dirty sources)
    double device_floor = 0;  // dirty + stop-copy (+ stuck initial)
    double floor = 0;
    double guest_rate = 0;    // throttleable share of the dirty rate
    double guest_floor = 0;   // throttleable share of the RAM floor
  };

  double BandwidthBps() const;
  bool DeviceNotDraining(const Device& d) const;
  bool SourcePerpetuallyDirty(const Source& s) const;
  Model BuildModel() const;
  // Fills the verdict, forecast, cause and throttle parts of `e`.
  void Judge(Estimate& e, const Model& m) const;

  Options options_;
  std::vector<Source> sources_;
  std::vector<Device> devices_;
  WindowedRate bandwidth_;
  Ewma dirty_rate_bps_;
  Ewma sync_ns_;
  std::vector<Ewma> fixed_ns_;  // per FixedCost
  uint64_t syncs_ = 0;
  uint64_t last_now_ns_ = 0;
  uint64_t page_size_bytes_ = 4096;
  uint64_t ram_pending_pages_ = 0;
  uint64_t wws_pages_ = 0;
  uint64_t pending_bytes_ = 0;
  uint64_t device_pending_bytes_ = 0;  // devices' initial+dirty+stop-copy
  uint64_t previous_pending_bytes_ = 0;
  std::deque<uint64_t> recent_pending_;  // last k pending sizes
  uint32_t never_streak_ = 0;        // syncs with lambda >= 1
  uint32_t unreachable_streak_ = 0;  // syncs with budget <= floor
  uint32_t no_progress_streak_ = 0;  // syncs without min_progress
};

}  // namespace converge

#endif  // CONVERGE_ENGINE_ESTIMATOR_H_
