#include "tests/fault/fault_rig.h"

#include <gtest/gtest.h>

#include <cassert>
#include <chrono>
#include <thread>
#include <utility>

namespace converge::testing {

RigOptions FaultRigOptions(int num_devices) {
  RigOptions o;
  o.ram_bytes = uint64_t{64} << 20;
  o.num_devices = num_devices;
  o.device.precopy_initial_bytes = 1 << 20;
  o.device.stop_copy_bytes = 512 << 10;
  o.device.dirty_bytes_per_sec = 1 << 20;
  o.device.max_dirty_bytes = 2 << 20;
  o.workload.kind = GuestWorkload::kRandom;
  o.workload.rate_pages_per_s = 20000;
  return o;
}

EngineOptions FaultEngineOptions() {
  EngineOptions o;
  o.policy.downtime_limit_ms = 100;
  o.policy.max_iterations = 8;
  o.policy.on_limit = OnLimit::kForceSwitchover;
  o.rearm_chunk_bytes = 8 << 20;
  return o;
}

::testing::AssertionResult Completed(const FaultRun& run) {
  if (!run.source.ok()) {
    return ::testing::AssertionFailure() << "source: " << run.source.ToString();
  }
  if (!run.destination.ok()) {
    return ::testing::AssertionFailure()
           << "destination: " << run.destination.ToString();
  }
  if (!run.verified) {
    return ::testing::AssertionFailure() << "not verified: " << run.mismatch;
  }
  return ::testing::AssertionSuccess();
}

FaultRun MigrateThrough(MigrationRig& rig, PrecopyEngine& engine,
                        const MemoryTransport& out) {
  FaultRun run;
  run.source = rig.RunSource(engine).status();
  if (!run.source.ok()) return run;
  MemoryTransport in(out.data());
  Result<std::unique_ptr<Destination>> dest = rig.NewDestination(in);
  if (!dest.ok()) {
    run.destination = dest.status();
  } else {
    run.destination = (*dest)->Run().status();
    run.verified = run.destination.ok() && rig.Verify(&run.mismatch);
  }
  (void)rig.vm().Resume();
  return run;
}

bool VcpuMakesProgress(MigrationRig& rig) {
  const uint64_t before = rig.vm().pages_written();
  for (int i = 0; i < 10000; ++i) {
    if (rig.vm().pages_written() > before) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

void ExpectSourceRecovers(MigrationRig& rig,
                          std::unique_ptr<PrecopyEngine> engine,
                          const std::vector<const WatchedSource*>& extra) {
  assert(engine != nullptr);
  Status cancelled = engine->Cancel();
  EXPECT_TRUE(cancelled.ok()) << cancelled.ToString();
  const int num_devices = static_cast<int>(engine->num_devices());
  for (int i = 0; i < num_devices; ++i) {
    EXPECT_EQ(engine->device(static_cast<uint32_t>(i)).data_fd(), -1)
        << "device " << i;
    EXPECT_EQ(rig.source_device(i).state(), sim::MigState::kRunning)
        << "device " << i;
  }
  engine.reset();
  EXPECT_FALSE(rig.vm().paused());
  EXPECT_TRUE(rig.vm().vcpu_status().ok())
      << rig.vm().vcpu_status().ToString();
  EXPECT_TRUE(VcpuMakesProgress(rig)) << "the source vCPU stopped writing";
  EXPECT_FALSE(rig.source().started()) << "KVM dirty logging left on";
  for (const WatchedSource* w : extra) {
    EXPECT_FALSE(w->started()) << w->name() << " left tracking";
  }
  Result<MigrationOutcome> again = rig.MigrateInMemory(FaultEngineOptions());
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_TRUE(again->verified) << again->mismatch;
}

}  // namespace converge::testing
