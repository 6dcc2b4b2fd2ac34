// RunModelMigration: `converge-bench model`. The same PrecopyEngine, with
// the real DirtyTracker, Estimator and policy, migrates a modelled guest of
// any size on a VirtualClock: a WorkloadModel behind a ModelDirtySource
// writes pages, a ModelRamChannel charges each page's calibrated wire size
// over a LinkModel, and the stream itself (header, device data, end
// records) goes to a LinkTransport that costs link time and discards the
// bytes. The emulated devices are real (their data_fds are pipes read
// through io_uring) but dirty their state on the virtual clock.
//
// A 1 TiB guest is a 32 MiB bitmap per copy; the run takes seconds.
//
// Thread-safety: runs on the caller's thread.

#ifndef CONVERGE_BENCH_CLI_MODEL_MIGRATION_H_
#define CONVERGE_BENCH_CLI_MODEL_MIGRATION_H_

#include "base/status.h"
#include "bench/cli/content_calibration.h"
#include "bench/cli/migration_config.h"
#include "bench/cli/migration_loop.h"
#include "bench/cli/migration_summary.h"

namespace converge::bench {

// Runs the modelled migration. verified is nullopt (no content to
// compare); measured_downtime_ms is the source's pause to the last byte
// crossing the modelled link. REQUIRES: ValidateConfig(config, false).ok().
[[nodiscard]] Result<MigrationSummary> RunModelMigration(
    const MigrationConfig& config, const ContentCalibration& calibration,
    const IterationObserver& observer);

}  // namespace converge::bench

#endif  // CONVERGE_BENCH_CLI_MODEL_MIGRATION_H_
