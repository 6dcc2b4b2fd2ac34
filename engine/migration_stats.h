// Per-iteration and switchover records of a PrecopyEngine migration, and
// their rendering as JSON lines (one object per line, no JSON library).
//
// Units: nanoseconds for clock readings and durations (_ns, on the
// engine's injected Clock), milliseconds for downtime (_ms), bytes;
// _bps is BYTES per second.

#ifndef CONVERGE_ENGINE_MIGRATION_STATS_H_
#define CONVERGE_ENGINE_MIGRATION_STATS_H_

#include <cstdint>
#include <string>

#include "engine/estimate.h"

namespace converge {

// One Sync() and the Iterate() after it.
struct IterationStats {
  uint64_t iteration = 0;  // 1 for the first Iterate()
  uint64_t start_ns = 0;   // clock when Iterate() began
  uint64_t duration_ns = 0;
  uint64_t sync_ns = 0;    // the Sync() before it (harvest + PRECOPY_INFO)

  // RAM.
  uint64_t ram_dirtied_pages = 0;  // harvested by that Sync (union)
  uint64_t ram_pages_sent = 0;
  uint64_t ram_zero_pages = 0;
  uint64_t ram_wire_bytes = 0;
  uint64_t ram_pending_pages = 0;  // still dirty when Iterate() returned
  // Devices (all of them): data_fd bytes read and stream bytes framed.
  uint64_t device_bytes = 0;
  uint64_t device_wire_bytes = 0;
  // Everything the transport was handed during this iteration.
  uint64_t stream_bytes = 0;
  bool budget_exhausted = false;  // stopped by the bytes or ms budget

  // The estimate after the Sync, as the policy saw it.
  Verdict verdict = Verdict::kMeasuring;
  double predicted_downtime_ms = 0;
  double qemu_expected_downtime_ms = 0;
  uint64_t pending_bytes = 0;
  double bandwidth_bps = 0;
  double dirty_rate_bps = 0;
  double lambda = 0;
};

// The stop-and-copy phase.
struct SwitchoverStats {
  // The estimate when the switchover was decided (the last Estimate()
  // before Switchover()).
  double predicted_downtime_ms = 0;
  double qemu_expected_downtime_ms = 0;
  std::string reason;  // the policy's reason, or "requested"

  // Clock readings.
  uint64_t start_ns = 0;      // Switchover() called
  uint64_t paused_ns = 0;     // just before the pause callback ran
  uint64_t last_byte_ns = 0;  // end-of-stream handed to the transport

  // Durations of each step (the fixed costs fed back to the estimator).
  uint64_t p2p_ns = 0;          // all devices to the P2P states (pre-pause)
  uint64_t pause_ns = 0;        // the pause callback
  uint64_t final_sync_ns = 0;   // harvest with vCPUs paused
  uint64_t device_stop_ns = 0;  // P2P states to STOP_COPY
  uint64_t device_drain_ns = 0; // every data_fd read to its end and framed
  uint64_t ram_ns = 0;          // the remaining dirty RAM
  uint64_t finish_ns = 0;       // end records and transport flush
  // Source-side downtime: paused_ns to last_byte_ns.
  uint64_t source_downtime_ns = 0;

  // The stop-and-copy payload.
  uint64_t ram_pages = 0;
  uint64_t ram_wire_bytes = 0;
  uint64_t device_bytes = 0;
  uint64_t stream_bytes = 0;

  // The whole migration.
  uint64_t iterations = 0;
  uint64_t total_stream_bytes = 0;  // transport bytes, header to end
  uint64_t total_ram_pages = 0;
  uint64_t total_device_bytes = 0;
  uint64_t total_time_ns = 0;  // Start() to last_byte_ns
};

// One JSON object on one line (no trailing newline), keys as the fields.
std::string IterationStatsJson(const IterationStats& stats);
std::string SwitchoverStatsJson(const SwitchoverStats& stats);

}  // namespace converge

#endif  // CONVERGE_ENGINE_MIGRATION_STATS_H_
