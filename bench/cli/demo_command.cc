// converge-bench demo: one verified migration of the real micro-VM.

#include "bench/cli/commands.h"
#include "bench/cli/migration_config.h"
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
  return RunMigrationCommand("demo", kDemoSummary, MigrationConfig(),
                             /*real_vm=*/true, /*require_verified=*/true,
                             RunVmMigration, args, out, err);
}

}  // namespace converge::bench
