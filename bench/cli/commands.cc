#include "bench/cli/commands.h"

#include <memory>

#include "bench/cli/migration_summary.h"
#include "bench/cli/progress.h"

namespace converge::bench {
namespace {

constexpr char kUsage[] =
    "usage: converge-bench <command> [flags]\n"
    "\n"
    "commands:\n"
    "  demo    migrate a real KVM micro-VM with emulated VFIO devices over\n"
    "          loopback TCP and verify the destination by content\n"
    "  sweep   one demo migration per downtime limit; table, CSV, SVG, JSON\n"
    "  model   the same engine on a modelled guest of any size (1 TiB\n"
    "          takes seconds) on a virtual clock\n"
    "\n"
    "converge-bench <command> --help lists a command's flags.\n";

}  // namespace

std::optional<int> ParseCommandFlags(const std::string& command, Flags& flags,
                                     const std::vector<std::string>& args,
                                     const std::string& summary, FILE* out,
                                     FILE* err) {
  Status s = flags.Parse(args);
  if (flags.help_requested()) {
    fputs(flags.Usage(summary).c_str(), out);
    return kExitOk;
  }
  if (!s.ok()) {
    const std::string& message = s.message();
    if (message.find("--help") != std::string::npos) {
      fprintf(err, "converge-bench %s: %s\n", command.c_str(), message.c_str());
    } else {
      fprintf(err, "converge-bench %s: %s (see converge-bench %s --help)\n",
              command.c_str(), message.c_str(), command.c_str());
    }
    return kExitUsage;
  }
  return std::nullopt;
}

bool WriteOutput(const std::string& path, const std::string& text,
                 const char* what, FILE* err) {
  if (path.empty()) return true;
  Status s = WriteTextFile(path, text);
  if (!s.ok()) {
    fprintf(err, "converge-bench: writing the %s failed: %s\n", what,
            s.message().c_str());
    return false;
  }
  fprintf(err, "wrote %s to %s\n", what, path.c_str());
  return true;
}

int RunMigrationCommand(const std::string& command, const std::string& summary,
                        MigrationConfig config, bool real_vm,
                        bool require_verified, const MigrationRunner& run,
                        const std::vector<std::string>& args, FILE* out,
                        FILE* err) {
  std::string json_path;
  std::string svg_path;
  Flags flags(command);
  AddMigrationFlags(flags, config);
  flags.AddDouble("downtime-ms", &config.downtime_limit_ms,
                  "downtime limit in ms");
  flags.AddString("json", &json_path, "write the JSON summary to this file");
  flags.AddString("svg", &svg_path, "write the per-iteration plot here");
  if (std::optional<int> code =
          ParseCommandFlags(command, flags, args, summary, out, err)) {
    return *code;
  }
  if (Status s = ValidateConfig(config, real_vm); !s.ok()) {
    fprintf(err, "converge-bench %s: %s (see converge-bench %s --help)\n",
            command.c_str(), s.message().c_str(), command.c_str());
    return kExitUsage;
  }

  std::unique_ptr<ProgressLine> progress;
  if (!config.quiet) progress = std::make_unique<ProgressLine>(err);
  IterationObserver observer = [&](const IterationRecord& r) {
    if (progress) progress->Update(ProgressText(r, config.downtime_limit_ms));
  };
  Result<MigrationSummary> result = run(config, observer);
  if (progress) progress->Finish();
  if (!result.ok()) {
    fprintf(err, "converge-bench %s: %s\n", command.c_str(),
            result.status().message().c_str());
    return kExitFailure;
  }
  fputs(SummaryText(*result).c_str(), out);
  bool written = WriteOutput(json_path, SummaryJson(*result), "JSON summary",
                             err);
  written &= WriteOutput(svg_path, RenderSvg(IterationFigure(*result)),
                         "per-iteration plot", err);
  if (require_verified && !result->verified.value_or(false)) {
    fprintf(err, "converge-bench %s: verification FAILED: %s\n",
            command.c_str(), result->verification.c_str());
    return kExitFailure;
  }
  return written ? kExitOk : kExitFailure;
}

int RunConvergeBench(const std::vector<std::string>& args, FILE* out,
                     FILE* err) {
  if (args.empty()) {
    fputs(kUsage, err);
    return kExitUsage;
  }
  const std::string& command = args[0];
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (command == "demo") return RunDemoCommand(rest, out, err);
  if (command == "sweep") return RunSweepCommand(rest, out, err);
  if (command == "model") return RunModelCommand(rest, out, err);
  if (command == "--help" || command == "-h" || command == "help") {
    fputs(kUsage, out);
    return kExitOk;
  }
  fprintf(err, "converge-bench: unknown command '%s' (demo, sweep, model; "
               "see converge-bench --help)\n", command.c_str());
  return kExitUsage;
}

}  // namespace converge::bench
