// RunVmMigration: one real migration, as `converge-bench demo` and `sweep`
// run it. A KVM micro-VM runs the chosen workload over RAM filled with a
// realistic content mix; emulated PRE_COPY VFIO devices sit on both sides;
// the PrecopyEngine (KVM dirty log, real estimator and policy, lz4/zstd,
// io_uring) streams over a loopback TCP connection to a Destination on a
// receiver thread in the same process. Afterwards the destination's RAM is
// compared with the source's byte for byte and every device's restored
// state with what its source streamed.
//
// Thread-safety: runs on the caller's thread (plus the receiver thread and
// the vCPU thread it owns); one run at a time per process is what it is
// built for (the micro-VM takes SIGUSR1).

#ifndef CONVERGE_BENCH_CLI_VM_MIGRATION_H_
#define CONVERGE_BENCH_CLI_VM_MIGRATION_H_

#include <string>

#include "base/status.h"
#include "bench/cli/migration_config.h"
#include "bench/cli/migration_loop.h"
#include "bench/cli/migration_summary.h"

namespace converge::bench {

// OK when the KVM device (kvm_path) can be opened; otherwise an error
// saying that demo and sweep need it and that `model` does not.
[[nodiscard]] Status CheckKvmAvailable(const std::string& kvm_path = "/dev/kvm");

// Runs the migration. A verification mismatch is not an error: it comes
// back as verified = false with what differed. Errors are runtime failures
// (no KVM, setup, the engine or the destination), naming the cause.
// REQUIRES: ValidateConfig(config, true).ok().
[[nodiscard]] Result<MigrationSummary> RunVmMigration(
    const MigrationConfig& config, const IterationObserver& observer);

}  // namespace converge::bench

#endif  // CONVERGE_BENCH_CLI_VM_MIGRATION_H_
