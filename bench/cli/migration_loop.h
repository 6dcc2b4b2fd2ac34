// DriveMigration: the pre-copy loop every converge-bench migration runs, the
// way a VMM would drive a PrecopyEngine: Sync, ask the policy, Iterate,
// until the policy says switch over (or a limit forces it), then
// Switchover() with the caller's pause hooks. Each sync becomes one
// IterationRecord of the summary and one progress report.
//
// Thread-safety: runs on the caller's thread, like the engine.

#ifndef CONVERGE_BENCH_CLI_MIGRATION_LOOP_H_
#define CONVERGE_BENCH_CLI_MIGRATION_LOOP_H_

#include <functional>

#include "base/clock.h"
#include "base/status.h"
#include "bench/cli/migration_summary.h"
#include "engine/precopy_engine.h"

namespace converge::bench {

// Receives each record as soon as its sync has been judged.
using IterationObserver = std::function<void(const IterationRecord&)>;

struct DriveOptions {
  // The RAM channel moves pages without writing them to the engine's
  // transport (the model's channel): bytes sent then count its wire bytes
  // as well as the transport's.
  bool ram_outside_transport = false;
};

// Starts the engine and runs it to the end of the stream. Fills the
// summary's per-iteration records, predicted downtime, iterations, bytes
// sent, device bytes, total time, verdict, decision and converged. On any
// error the engine is cancelled (the source keeps running) and the error
// returned, with context saying which step failed.
// REQUIRES: engine configured (regions, sources, devices), not started.
[[nodiscard]] Result<SwitchoverStats> DriveMigration(
    PrecopyEngine& engine, Clock& clock, const SwitchoverHooks& hooks,
    const IterationObserver& observer, const DriveOptions& options,
    MigrationSummary& summary);

}  // namespace converge::bench

#endif  // CONVERGE_BENCH_CLI_MIGRATION_LOOP_H_
