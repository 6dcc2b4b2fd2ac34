// converge-bench model: the engine on a modelled guest of any size.

#include "bench/cli/commands.h"
#include "bench/cli/content_calibration.h"
#include "bench/cli/migration_config.h"
#include "bench/cli/model_migration.h"

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
  MigrationConfig defaults;
  defaults.ram_gib = 1024;
  defaults.link_gbps = 25;
  defaults.write_rate_pages = 250000;
  defaults.max_time_s = 3600;
  MigrationRunner run = [err](const MigrationConfig& config,
                              const IterationObserver& observer)
      -> Result<MigrationSummary> {
    CalibrationOptions calibration_options;
    calibration_options.codec.codec = *ParseCodec(config.codec);
    Result<ContentCalibration> calibration =
        CalibrateContent(calibration_options);
    if (!calibration.ok()) {
      return calibration.status().WithContext("calibrating the codec failed");
    }
    fprintf(err,
            "calibrated %s: text page %.0f bytes, incompressible page %.0f "
            "bytes\n",
            config.codec.c_str(), calibration->text_bytes_per_page,
            calibration->random_bytes_per_page);
    return RunModelMigration(config, *calibration, observer);
  };
  // Modelled memory has no content to compare: `verified` is n/a.
  return RunMigrationCommand("model", kModelSummary, defaults,
                             /*real_vm=*/false, /*require_verified=*/false,
                             run, args, out, err);
}

}  // namespace converge::bench
