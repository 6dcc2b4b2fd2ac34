// Renderings of a downtime-limit sweep (one MigrationSummary per limit): the
// table on stdout, the CSV, and the plot of limit against measured and
// predicted downtime and total time.
//
// Thread-safety: pure functions.

#ifndef CONVERGE_BENCH_CLI_SWEEP_REPORT_H_
#define CONVERGE_BENCH_CLI_SWEEP_REPORT_H_

#include <string>
#include <vector>

#include "bench/cli/migration_summary.h"
#include "bench/cli/svg_plot.h"

namespace converge::bench {

// Columns: limit, predicted and measured downtime, total time, bytes sent,
// iterations, converged, verified.
std::string SweepTable(const std::vector<MigrationSummary>& runs);
// The same columns in machine units, with a header row.
std::string SweepCsv(const std::vector<MigrationSummary>& runs);
// Panel 1: measured and predicted downtime against the limit (and the
// limit itself, y = x); panel 2: total migration time.
PlotFigure SweepFigure(const std::vector<MigrationSummary>& runs);

}  // namespace converge::bench

#endif  // CONVERGE_BENCH_CLI_SWEEP_REPORT_H_
