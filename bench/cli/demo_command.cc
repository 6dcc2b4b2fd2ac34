// converge-bench demo: one verified migration of the real micro-VM.

#include <memory>

#include "bench/cli/commands.h"
#include "bench/cli/migration_config.h"
#include "bench/cli/migration_summary.h"
#include "bench/cli/progress.h"
#include "bench/cli/vm_migration.h"

namespace converge::bench {
namespace {

constexpr char kDemoSummary[] =
    "Migrates a KVM micro-VM running a workload, with emulated PRE_COPY VFIO\n"
    "devices, over a loopback TCP connection to an in-process destination.\n"
    "Live progress on stderr, a summary on stdout. Exits 0 only if the\n"
    "destination's RAM and every device's state equal the source's,\n"
    "compared by content.";

}  // namespace

int RunDemoCommand(const std::vector<std::string>& args, FILE* out,
                   FILE* err) {
  MigrationConfig config;
  std::string json_path;
  std::string svg_path;
  Flags flags("demo");
  AddMigrationFlags(flags, config);
  flags.AddDouble("downtime-ms", &config.downtime_limit_ms,
                  "downtime limit in ms");
  flags.AddString("json", &json_path, "write the JSON summary to this file");
  flags.AddString("svg", &svg_path, "write the per-iteration plot here");
  if (std::optional<int> code =
          ParseCommandFlags("demo", flags, args, kDemoSummary, out, err)) {
    return *code;
  }
  if (Status s = ValidateConfig(config, /*real_vm=*/true); !s.ok()) {
    fprintf(err, "converge-bench demo: %s (see converge-bench demo --help)\n",
            s.message().c_str());
    return kExitUsage;
  }

  std::unique_ptr<ProgressLine> progress;
  if (!config.quiet) progress = std::make_unique<ProgressLine>(err);
  IterationObserver observer = [&](const IterationRecord& r) {
    if (progress) progress->Update(ProgressText(r, config.downtime_limit_ms));
  };
  Result<MigrationSummary> summary = RunVmMigration(config, observer);
  if (progress) progress->Finish();
  if (!summary.ok()) {
    fprintf(err, "converge-bench demo: %s\n", summary.status().message().c_str());
    return kExitFailure;
  }
  fputs(SummaryText(*summary).c_str(), out);
  bool written = WriteOutput(json_path, SummaryJson(*summary), "JSON summary",
                             err);
  written &= WriteOutput(svg_path, RenderSvg(IterationFigure(*summary)),
                         "per-iteration plot", err);
  if (!summary->verified.value_or(false)) {
    fprintf(err, "converge-bench demo: verification FAILED: %s\n",
            summary->verification.c_str());
    return kExitFailure;
  }
  return written ? kExitOk : kExitFailure;
}

}  // namespace converge::bench
