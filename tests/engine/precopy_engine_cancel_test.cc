// Cancel at every phase leaves the source running with nothing lost: the
// devices are back in RUNNING, logging is stopped, and a migration started
// afterwards verifies byte for byte.

#include <gtest/gtest.h>

#include <cerrno>
#include <csignal>
#include <functional>
#include <memory>
#include <string>

#include "engine/precopy_engine.h"
#include "tests/engine/migration_rig.h"
#include "tests/vm/kvm_test_support.h"

namespace converge {
namespace {

using testing::MigrationRig;
using testing::RigOptions;

struct CancelCase {
  std::string name;
  // Drives the engine to the phase under test; returns the status of the
  // call that ended the migration (OK when Cancel() is called after it).
  std::function<Status(PrecopyEngine&, MigrationRig&)> drive;
  bool cancel_after = true;  // the test calls Cancel() itself
};

Status SyncOnce(PrecopyEngine& e) { return e.Sync().status(); }

std::vector<CancelCase> Cases() {
  return {
      {"BeforeStart", [](PrecopyEngine&, MigrationRig&) { return OkStatus(); }},
      {"AfterStart",
       [](PrecopyEngine& e, MigrationRig&) { return e.Start(); }},
      {"MidIteration",
       [](PrecopyEngine& e, MigrationRig&) {
         CONVERGE_RETURN_IF_ERROR(e.Start());
         CONVERGE_RETURN_IF_ERROR(SyncOnce(e));
         CONVERGE_ASSIGN_OR_RETURN(IterationStats s, e.Iterate());
         if (!s.budget_exhausted) return InternalError("iteration finished");
         return OkStatus();
       }},
      {"AfterDecision",
       [](PrecopyEngine& e, MigrationRig&) {
         CONVERGE_RETURN_IF_ERROR(e.Start());
         for (int i = 0; i < 3; ++i) {
           CONVERGE_RETURN_IF_ERROR(SyncOnce(e));
           CONVERGE_RETURN_IF_ERROR(e.Iterate().status());
         }
         CONVERGE_RETURN_IF_ERROR(SyncOnce(e));
         (void)e.ShouldSwitchover();
         return OkStatus();
       }},
      {"SwitchoverPauseFails",
       [](PrecopyEngine& e, MigrationRig&) {
         CONVERGE_RETURN_IF_ERROR(e.Start());
         CONVERGE_RETURN_IF_ERROR(SyncOnce(e));
         Result<SwitchoverStats> s =
             e.Switchover([] { return IoError("vCPU refused to stop"); });
         return s.ok() ? InternalError("switchover succeeded") : OkStatus();
       },
       false},
      {"SwitchoverStopCopyFails",
       [](PrecopyEngine& e, MigrationRig& rig) {
         CONVERGE_RETURN_IF_ERROR(e.Start());
         CONVERGE_RETURN_IF_ERROR(SyncOnce(e));
         rig.source_device(1).InjectArcFailure(sim::MigState::kPreCopyP2p,
                                               sim::MigState::kStopCopy, EIO,
                                               false);
         MicroVm* vm = &rig.vm();
         SwitchoverHooks hooks;
         hooks.pause_vcpus = [vm] { return vm->Pause(); };
         hooks.resume_vcpus = [vm] { (void)vm->Resume(); };
         Result<SwitchoverStats> s = e.Switchover(hooks);
         if (s.ok()) return InternalError("switchover succeeded");
         if (vm->paused()) return InternalError("vCPU left paused");
         return OkStatus();
       },
       false},
  };
}

class PrecopyEngineCancelTest : public ::testing::TestWithParam<CancelCase> {
 protected:
  void SetUp() override { std::signal(SIGPIPE, SIG_IGN); }
};

TEST_P(PrecopyEngineCancelTest, LeavesSourceRunningAndALaterMigrationVerifies) {
  CONVERGE_SKIP_WITHOUT_KVM();
  RigOptions r;
  r.ram_bytes = uint64_t{32} << 20;
  r.device.precopy_initial_bytes = 1 << 20;
  r.device.stop_copy_bytes = 256 << 10;
  r.workload.kind = GuestWorkload::kSequential;
  r.workload.rate_pages_per_s = 10000;
  Result<std::unique_ptr<MigrationRig>> rig = MigrationRig::Create(r);
  ASSERT_TRUE(rig.ok()) << rig.status().ToString();

  EngineOptions o;
  o.policy.iteration_budget_bytes = 2 << 20;
  o.rearm_chunk_bytes = 4 << 20;
  MemoryTransport sink;
  Result<std::unique_ptr<PrecopyEngine>> engine = (*rig)->NewEngine(sink, o);
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  const CancelCase& c = GetParam();
  Status driven = c.drive(**engine, **rig);
  ASSERT_TRUE(driven.ok()) << driven.ToString();
  if (c.cancel_after) {
    EXPECT_TRUE((*engine)->Cancel().ok());
  }
  EXPECT_EQ((*engine)->phase(), EnginePhase::kCancelled);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ((*rig)->source_device(i).state(), sim::MigState::kRunning)
        << "device " << i;
    EXPECT_EQ((*engine)->device(static_cast<uint32_t>(i)).data_fd(), -1);
  }
  EXPECT_FALSE((*rig)->source().started());
  EXPECT_FALSE((*rig)->vm().paused());
  EXPECT_TRUE((*engine)->Cancel().ok()) << "Cancel is idempotent";
  EXPECT_FALSE((*engine)->Sync().ok());
  engine->reset();

  EngineOptions again;
  again.policy.max_iterations = 8;
  again.policy.on_limit = OnLimit::kForceSwitchover;
  Result<testing::MigrationOutcome> out = (*rig)->MigrateInMemory(again);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_TRUE(out->verified) << out->mismatch;
}

INSTANTIATE_TEST_SUITE_P(
    Phases, PrecopyEngineCancelTest, ::testing::ValuesIn(Cases()),
    [](const ::testing::TestParamInfo<CancelCase>& param) {
      return param.param.name;
    });

}  // namespace
}  // namespace converge
