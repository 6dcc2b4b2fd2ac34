// The commands of converge-bench: demo, sweep, model. Each parses its flags,
// runs, prints results on `out` (stdout), progress and errors on `err`
// (stderr), and returns the process exit code.
//
// Exit codes: 0 success (demo and sweep: every migration verified by
// content), 1 a runtime failure or a verification mismatch (the message
// names the cause), 2 bad usage (the message names the flag, with a hint
// to --help).
//
// Thread-safety: one command at a time per process.

#ifndef CONVERGE_BENCH_CLI_COMMANDS_H_
#define CONVERGE_BENCH_CLI_COMMANDS_H_

#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "bench/cli/flags.h"
#include "bench/cli/migration_config.h"
#include "bench/cli/migration_loop.h"
#include "bench/cli/migration_summary.h"

namespace converge::bench {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

// args: everything after the program name ("demo", "--json", "x.json").
int RunConvergeBench(const std::vector<std::string>& args, FILE* out,
                     FILE* err);

// args: everything after the command name.
int RunDemoCommand(const std::vector<std::string>& args, FILE* out, FILE* err);
int RunSweepCommand(const std::vector<std::string>& args, FILE* out,
                    FILE* err);
int RunModelCommand(const std::vector<std::string>& args, FILE* out,
                    FILE* err);

// Shared by the commands: parses args into flags. Returns an exit code when
// the command must stop here (help printed on `out`: 0; a bad flag
// printed on `err`: 2), nullopt to go on.
std::optional<int> ParseCommandFlags(const std::string& command, Flags& flags,
                                     const std::vector<std::string>& args,
                                     const std::string& summary, FILE* out,
                                     FILE* err);

// Writes text to path if path is not empty, then says where on `err`.
// Returns false (after printing the error) on failure.
bool WriteOutput(const std::string& path, const std::string& text,
                 const char* what, FILE* err);

// One migration as a command (demo, model): the shared flags (starting from
// `config`'s defaults), validation, live progress, the summary on `out`,
// --json and --svg. `run` performs the migration; with `require_verified`
// the exit code is 0 only if the summary says the destination verified.
using MigrationRunner = std::function<Result<MigrationSummary>(
    const MigrationConfig&, const IterationObserver&)>;
int RunMigrationCommand(const std::string& command, const std::string& summary,
                        MigrationConfig config, bool real_vm,
                        bool require_verified, const MigrationRunner& run,
                        const std::vector<std::string>& args, FILE* out,
                        FILE* err);

}  // namespace converge::bench

#endif  // CONVERGE_BENCH_CLI_COMMANDS_H_
