// Estimate: what the Estimator says about a migration after a sync. Plain
// data the policy, the engine's stats record and the C API read.
//
// Units: bytes, milliseconds (_ms); _bps is BYTES per second.

#ifndef CONVERGE_ENGINE_ESTIMATE_H_
#define CONVERGE_ENGINE_ESTIMATE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace converge {

enum class Verdict : uint8_t {
  kMeasuring,        // fewer than two syncs or no full bandwidth window yet
  kConverging,       // pending is shrinking toward the limit
  kReady,            // predicted downtime <= limit (and switchover-ack met)
  kStalled,          // the limit is not reachable at this rate
  kNeverConverges,   // dirty rate >= bandwidth, sustained
};
std::string_view VerdictName(Verdict verdict);

// Why a migration is stalled or never converges.
enum class StallCause : uint8_t {
  kNone,
  kGuestDirtyRate,          // the guest rewrites RAM faster than it drains
  kPerpetuallyDirtySource,  // a source reports all its pages every sync
  kDeviceNotDraining,       // a device's initial_bytes does not fall
  kDeviceStateSize,         // device stop-copy state alone misses the limit
  kFixedCosts,              // fixed costs alone exceed the limit
};
std::string_view StallCauseName(StallCause cause);

struct SourceEstimate {
  std::string name;
  double dirty_rate_bps = 0;
  uint64_t last_pages = 0;        // reported at the last sync
  bool perpetually_dirty = false;  // all its pages, k syncs running
};

struct DeviceEstimate {
  std::string name;
  uint64_t initial_bytes = 0;
  uint64_t dirty_bytes = 0;
  uint64_t stop_copy_bytes = 0;
  bool draining = true;  // false: initial_bytes has not fallen in k syncs
};

struct Estimate {
  uint64_t syncs = 0;

  // What a switchover now would have to send.
  uint64_t ram_pending_bytes = 0;
  uint64_t device_pending_bytes = 0;  // every device's initial+dirty+stop
  uint64_t pending_bytes = 0;         // the two together

  bool bandwidth_measured = false;
  double bandwidth_bps = 0;
  double dirty_rate_bps = 0;  // union of all sources
  std::vector<SourceEstimate> sources;
  std::vector<DeviceEstimate> devices;

  // Fixed costs: final sync + device stop + drain latency + destination
  // apply; measured where the engine recorded them, priors elsewhere.
  double fixed_costs_ms = 0;
  bool fixed_costs_measured = false;  // all four measured
  // Bytes the guest dirties between the last harvest and the stop.
  double dirtied_during_stop_bytes = 0;

  // (pending + dirtied during the stop) / bandwidth + fixed costs.
  double predicted_downtime_ms = 0;
  // QEMU's expected_downtime: RAM dirty bytes / bandwidth, for comparison.
  double qemu_expected_downtime_ms = 0;

  // Trend.
  double lambda = 0;         // dirty rate / bandwidth
  double pending_ratio = 0;  // pending now / pending at the previous sync
  uint64_t wws_floor_bytes = 0;  // RAM rewritten every sync (>= k syncs)
  uint64_t floor_bytes = 0;      // what no iteration removes (RAM + devices)

  // kConverging: the geometric model's iterations and time to go.
  std::optional<uint64_t> iterations_to_go;
  std::optional<double> time_to_go_ms;

  Verdict verdict = Verdict::kMeasuring;
  bool switchover_ack_satisfied = false;

  // kStalled / kNeverConverges.
  StallCause cause = StallCause::kNone;
  std::string cause_name;  // the source or device named as the cause
  double smallest_reachable_limit_ms = 0;
  // The vCPU throttle (percent, 0-99) predicted to reach the asked limit;
  // nullopt when no throttle would.
  std::optional<double> throttle_percent;

  // One line for logs: verdict, predicted downtime, pending, rates, cause.
  std::string Summary() const;
};

}  // namespace converge

#endif  // CONVERGE_ENGINE_ESTIMATE_H_
