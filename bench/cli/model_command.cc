// converge-bench model: the engine on a modelled guest of any size.

#include <memory>

#include "bench/cli/commands.h"
#include "bench/cli/content_calibration.h"
#include "bench/cli/migration_config.h"
#include "bench/cli/migration_summary.h"
#include "bench/cli/model_migration.h"
#include "bench/cli/progress.h"

namespace converge::bench {
namespace {

constexpr char kModelSummary[] =
    "Runs the same PrecopyEngine (DirtyTracker, Estimator, policy) against a\n"
    "modelled guest of any size on a virtual clock: page writes from a\n"
    "workload model, page costs from the real codec (calibrated at start),\n"
    "a modelled link. No KVM needed; a 1 TiB guest takes seconds.";

}  // namespace

int RunModelCommand(const std::vector<std::string>& args, FILE* out,
                    FILE* err) {
  MigrationConfig config;
  config.ram_gib = 1024;
  config.link_gbps = 25;
  config.write_rate_pages = 250000;
  config.max_time_s = 3600;
  std::string json_path;
  std::string svg_path;
  Flags flags("model");
  AddMigrationFlags(flags, config);
  flags.AddDouble("downtime-ms", &config.downtime_limit_ms,
                  "downtime limit in ms");
  flags.AddString("json", &json_path, "write the JSON summary to this file");
  flags.AddString("svg", &svg_path, "write the per-iteration plot here");
  if (std::optional<int> code =
          ParseCommandFlags("model", flags, args, kModelSummary, out, err)) {
    return *code;
  }
  if (Status s = ValidateConfig(config, /*real_vm=*/false); !s.ok()) {
    fprintf(err, "converge-bench model: %s (see converge-bench model --help)\n",
            s.message().c_str());
    return kExitUsage;
  }

  CalibrationOptions calibration_options;
  calibration_options.codec.codec = *ParseCodec(config.codec);
  Result<ContentCalibration> calibration =
      CalibrateContent(calibration_options);
  if (!calibration.ok()) {
    fprintf(err, "converge-bench model: calibrating the codec failed: %s\n",
            calibration.status().message().c_str());
    return kExitFailure;
  }
  fprintf(err, "calibrated %s: text page %.0f bytes, incompressible page %.0f "
               "bytes\n",
          config.codec.c_str(), calibration->text_bytes_per_page,
          calibration->random_bytes_per_page);

  std::unique_ptr<ProgressLine> progress;
  if (!config.quiet) progress = std::make_unique<ProgressLine>(err);
  IterationObserver observer = [&](const IterationRecord& r) {
    if (progress) progress->Update(ProgressText(r, config.downtime_limit_ms));
  };
  Result<MigrationSummary> summary =
      RunModelMigration(config, *calibration, observer);
  if (progress) progress->Finish();
  if (!summary.ok()) {
    fprintf(err, "converge-bench model: %s\n",
            summary.status().message().c_str());
    return kExitFailure;
  }
  fputs(SummaryText(*summary).c_str(), out);
  bool written = WriteOutput(json_path, SummaryJson(*summary), "JSON summary",
                             err);
  written &= WriteOutput(svg_path, RenderSvg(IterationFigure(*summary)),
                         "per-iteration plot", err);
  return written ? kExitOk : kExitFailure;
}

}  // namespace converge::bench
