// MigrationSummary: what one migration run by converge-bench produced (the
// JSON summary of shared/design.md plus per-iteration records), and its
// renderings: JSON, a readable text summary, and the per-iteration plot.
//
// Units: bytes, milliseconds (_ms); _bps is BYTES per second.
//
// Thread-safety: plain values and pure functions.

#ifndef CONVERGE_BENCH_CLI_MIGRATION_SUMMARY_H_
#define CONVERGE_BENCH_CLI_MIGRATION_SUMMARY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bench/cli/json_writer.h"
#include "bench/cli/svg_plot.h"
#include "base/status.h"

namespace converge::bench {

// One pre-copy iteration: the estimate after its sync and what it sent.
struct IterationRecord {
  uint64_t iteration = 0;
  double time_ms = 0;  // since pre-copy started
  uint64_t pending_bytes = 0;
  uint64_t ram_pending_bytes = 0;
  uint64_t device_pending_bytes = 0;
  double dirty_rate_bps = 0;
  double bandwidth_bps = 0;
  double predicted_downtime_ms = 0;
  uint64_t bytes_sent = 0;  // stream bytes this iteration wrote
  std::string verdict;
};

struct MigrationSummary {
  std::string mode;  // "demo" (a real micro-VM) or "model"
  std::string workload;
  double downtime_limit_ms = 0;
  // The estimate when switchover was decided.
  double predicted_downtime_ms = 0;
  // vCPU pause to destination ready.
  double measured_downtime_ms = 0;
  double total_time_ms = 0;
  uint64_t ram_bytes = 0;
  uint64_t bytes_sent = 0;    // stream bytes, RAM and devices
  uint64_t device_bytes = 0;  // device state bytes moved
  uint64_t iterations = 0;
  bool converged = false;  // switched over within the limit's prediction
  // Destination RAM and device state equal the source's, compared by
  // content; nullopt where there is no content (the model).
  std::optional<bool> verified;
  std::string verification;  // how it was checked, or why it failed

  // Context.
  std::string codec;
  double link_gbps = 0;  // 0 = no cap
  uint64_t devices = 0;
  uint64_t device_state_bytes = 0;  // per device
  uint64_t ram_pages_sent = 0;
  uint64_t zero_pages_sent = 0;
  std::string verdict;          // estimator verdict at switchover
  std::string decision;         // policy action at the end
  std::string decision_reason;  // why
  bool virtual_time = false;    // the model's clock
  double wall_time_ms = 0;      // real time the run took
  std::string error;            // a runtime failure, empty if none
  std::vector<IterationRecord> per_iteration;
};

// Writes s as one JSON object (keys of design.md first).
void WriteSummaryJson(JsonWriter& json, const MigrationSummary& s);
std::string SummaryJson(const MigrationSummary& s);
// A JSON array of summaries (sweep).
std::string SummariesJson(const std::vector<MigrationSummary>& all);

// The summary a person reads on stdout.
std::string SummaryText(const MigrationSummary& s);

// The progress line of one iteration: iteration, pending, dirty rate,
// bandwidth, predicted downtime.
std::string ProgressText(const IterationRecord& r, double limit_ms);

// Pending bytes and predicted downtime per iteration, with the limit line.
PlotFigure IterationFigure(const MigrationSummary& s);

// Writes text to path; the error names the path.
[[nodiscard]] Status WriteTextFile(const std::string& path,
                                   const std::string& text);

}  // namespace converge::bench

#endif  // CONVERGE_BENCH_CLI_MIGRATION_SUMMARY_H_
