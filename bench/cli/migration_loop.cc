#include "bench/cli/migration_loop.h"

#include <string>

namespace converge::bench {
namespace {

IterationRecord RecordOf(uint64_t sync_number, double time_ms,
                         const Estimate& e) {
  IterationRecord r;
  r.iteration = sync_number;
  r.time_ms = time_ms;
  r.pending_bytes = e.pending_bytes;
  r.ram_pending_bytes = e.ram_pending_bytes;
  r.device_pending_bytes = e.device_pending_bytes;
  r.dirty_rate_bps = e.dirty_rate_bps;
  r.bandwidth_bps = e.bandwidth_bps;
  r.predicted_downtime_ms = e.predicted_downtime_ms;
  r.verdict = std::string(VerdictName(e.verdict));
  return r;
}

Status Fail(PrecopyEngine& engine, const Status& error,
            std::string_view step) {
  Status cancelled = engine.Cancel();
  Status s = error.WithContext(step);
  if (!cancelled.ok()) {
    return Status(s.code(), s.message() + " (and cancelling failed: " +
                                cancelled.message() + ")");
  }
  return s;
}

}  // namespace

Result<SwitchoverStats> DriveMigration(PrecopyEngine& engine, Clock& clock,
                                       const SwitchoverHooks& hooks,
                                       const IterationObserver& observer,
                                       const DriveOptions& options,
                                       MigrationSummary& summary) {
  const uint64_t start_ns = clock.NowNs();
  if (Status s = engine.Start(); !s.ok()) return s.WithContext("start");

  SwitchoverDecision decision;
  uint64_t ram_bytes_outside = 0;  // channel bytes the transport never saw
  for (uint64_t sync_number = 1;; ++sync_number) {
    Result<SyncStats> sync = engine.Sync();
    if (!sync.ok()) return Fail(engine, sync.status(), "sync");
    Estimate estimate = engine.CurrentEstimate();
    decision = engine.ShouldSwitchover();
    IterationRecord record =
        RecordOf(sync_number, NsToMs(clock.NowNs() - start_ns), estimate);
    summary.verdict = record.verdict;
    if (decision.action != Action::kContinue) {
      summary.per_iteration.push_back(record);
      if (observer) observer(record);
      break;
    }
    Result<IterationStats> iteration = engine.Iterate();
    if (!iteration.ok()) return Fail(engine, iteration.status(), "iterate");
    record.bytes_sent = iteration->stream_bytes;
    if (options.ram_outside_transport) {
      record.bytes_sent += iteration->ram_wire_bytes;
      ram_bytes_outside += iteration->ram_wire_bytes;
    }
    summary.zero_pages_sent += iteration->ram_zero_pages;
    summary.per_iteration.push_back(record);
    if (observer) observer(record);
  }

  summary.decision = std::string(ActionName(decision.action));
  summary.decision_reason = decision.reason;
  summary.converged = decision.action == Action::kSwitchover;
  if (decision.action == Action::kAbort) {
    Status cancelled = engine.Cancel();
    std::string message = "the policy aborted the migration: " +
                          decision.reason;
    if (!cancelled.ok()) message += " (cancel: " + cancelled.message() + ")";
    return CancelledError(message);
  }

  Result<SwitchoverStats> sw = engine.Switchover(hooks);
  if (!sw.ok()) return sw.status().WithContext("switchover");
  summary.predicted_downtime_ms = sw->predicted_downtime_ms;
  summary.iterations = sw->iterations;
  summary.bytes_sent = sw->total_stream_bytes;
  if (options.ram_outside_transport) {
    summary.bytes_sent += ram_bytes_outside + sw->ram_wire_bytes;
  }
  summary.device_bytes = sw->total_device_bytes;
  summary.ram_pages_sent = sw->total_ram_pages;
  summary.total_time_ms = NsToMs(sw->total_time_ns);
  return sw;
}

}  // namespace converge::bench
