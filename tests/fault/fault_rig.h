// Shared pieces of the fault matrix: a small MigrationRig, engine options
// that finish quickly, and the checks every fault ends with: the source VM
// still runs (its vCPU keeps writing), its devices are RUNNING, dirty
// logging is stopped, and a clean migration of the same VM afterwards
// verifies byte for byte (so no dirty bit was lost).

#ifndef CONVERGE_TESTS_FAULT_FAULT_RIG_H_
#define CONVERGE_TESTS_FAULT_FAULT_RIG_H_

#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "engine/precopy_engine.h"
#include "io/transport.h"
#include "tests/engine/migration_rig.h"

namespace converge::testing {

// 64 MiB of RAM written at random, num_devices PRE_COPY devices with 1 MiB
// of initial and 512 KiB of stop-copy state.
RigOptions FaultRigOptions(int num_devices = 2);
// Forces a switchover after 8 iterations; 8 MiB re-arm chunks.
EngineOptions FaultEngineOptions();

// What a migration through a MemoryTransport under a fault gave.
struct FaultRun {
  Status source;       // of the source loop (MigrationRig::RunSource)
  Status destination;  // of Destination::Run, if the source completed
  bool verified = false;
  std::string mismatch;
};

// Success when the source loop and the destination both completed and the
// destination verified; otherwise a failure saying which did not.
::testing::AssertionResult Completed(const FaultRun& run);

// Runs the source loop through engine into `out`, then (if it completed)
// a destination over a copy of the stream, and verifies. Resumes the VM.
FaultRun MigrateThrough(MigrationRig& rig, PrecopyEngine& engine,
                        const MemoryTransport& out);

// The end of every fault: cancels engine (what a VMM does after a failed
// migration; a no-op after Cancel), then checks that the source runs on
// with its devices RUNNING and every watched source stopped, and that a
// clean migration afterwards verifies. REQUIRES: engine != nullptr.
void ExpectSourceRecovers(MigrationRig& rig,
                          std::unique_ptr<PrecopyEngine> engine,
                          const std::vector<const WatchedSource*>& extra = {});

// True once the vCPU wrote more pages than it had at the call (waits up to
// a generous bound; the workload writes thousands of pages per second).
bool VcpuMakesProgress(MigrationRig& rig);

}  // namespace converge::testing

#endif  // CONVERGE_TESTS_FAULT_FAULT_RIG_H_
