// converge-bench sweep: one verified demo migration per downtime limit.

#include <memory>

#include "bench/cli/commands.h"
#include "bench/cli/migration_config.h"
#include "bench/cli/migration_summary.h"
#include "bench/cli/progress.h"
#include "bench/cli/sweep_report.h"
#include "bench/cli/vm_migration.h"

namespace converge::bench {
namespace {

constexpr char kSweepSummary[] =
    "Runs one demo migration per downtime limit and reports, per limit, the\n"
    "predicted and measured downtime, total time, bytes sent, iterations and\n"
    "whether it converged: which limit to set for this workload.";

}  // namespace

int RunSweepCommand(const std::vector<std::string>& args, FILE* out,
                    FILE* err) {
  MigrationConfig config;
  std::vector<double> limits_ms = {50, 100, 200, 300, 500, 1000};
  std::string json_path;
  std::string csv_path;
  std::string svg_path;
  Flags flags("sweep");
  AddMigrationFlags(flags, config);
  flags.AddDoubleList("downtime-ms", &limits_ms,
                      "downtime limits in ms, comma-separated");
  flags.AddString("csv", &csv_path, "write one CSV row per limit here");
  flags.AddString("svg", &svg_path, "write the limit/downtime plot here");
  flags.AddString("json", &json_path,
                  "write the array of per-migration JSON summaries here");
  if (std::optional<int> code =
          ParseCommandFlags("sweep", flags, args, kSweepSummary, out, err)) {
    return *code;
  }
  if (Status s = ValidateConfig(config, /*real_vm=*/true); !s.ok()) {
    fprintf(err, "converge-bench sweep: %s (see converge-bench sweep --help)\n",
            s.message().c_str());
    return kExitUsage;
  }
  if (Status s = CheckKvmAvailable(); !s.ok()) {
    fprintf(err, "converge-bench sweep: %s\n", s.message().c_str());
    return kExitFailure;
  }

  std::vector<MigrationSummary> runs;
  bool all_verified = true;
  for (double limit_ms : limits_ms) {
    MigrationConfig run_config = config;
    run_config.downtime_limit_ms = limit_ms;
    fprintf(err, "== limit %s\n", FormatMs(limit_ms).c_str());
    std::unique_ptr<ProgressLine> progress;
    if (!config.quiet) progress = std::make_unique<ProgressLine>(err);
    IterationObserver observer = [&](const IterationRecord& r) {
      if (progress) progress->Update(ProgressText(r, limit_ms));
    };
    Result<MigrationSummary> summary = RunVmMigration(run_config, observer);
    if (progress) progress->Finish();
    if (summary.ok()) {
      runs.push_back(*summary);
    } else {
      fprintf(err, "converge-bench sweep: limit %s failed: %s\n",
              FormatMs(limit_ms).c_str(), summary.status().message().c_str());
      MigrationSummary failed = SummaryOf(run_config, "demo");
      failed.verified = false;
      failed.error = summary.status().message();
      runs.push_back(failed);
    }
    all_verified &= runs.back().verified.value_or(false);
  }

  fputs(SweepTable(runs).c_str(), out);
  bool written = WriteOutput(csv_path, SweepCsv(runs), "CSV", err);
  written &= WriteOutput(svg_path, RenderSvg(SweepFigure(runs)), "sweep plot",
                         err);
  written &= WriteOutput(json_path, SummariesJson(runs), "JSON summaries", err);
  if (!all_verified) {
    fprintf(err, "converge-bench sweep: not every migration verified\n");
    return kExitFailure;
  }
  return written ? kExitOk : kExitFailure;
}

}  // namespace converge::bench
