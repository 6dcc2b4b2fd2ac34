#include "engine/precopy_engine.h"

#include <gtest/gtest.h>

#include <csignal>
#include <memory>
#include <string>

#include "tests/engine/migration_rig.h"
#include "tests/vm/kvm_test_support.h"

namespace converge {
namespace {

using testing::MigrationOutcome;
using testing::MigrationRig;
using testing::NewRig;
using testing::RigOptions;

RigOptions SmallRig(bool dirty_ring = false) {
  RigOptions o;
  o.ram_bytes = uint64_t{64} << 20;
  o.dirty_ring = dirty_ring;
  o.device.precopy_initial_bytes = 2 << 20;
  o.device.stop_copy_bytes = 1 << 20;
  o.device.dirty_bytes_per_sec = 1 << 20;
  o.device.max_dirty_bytes = 4 << 20;
  o.workload.kind = GuestWorkload::kRandom;
  o.workload.rate_pages_per_s = 20000;
  return o;
}

EngineOptions QuickEngine() {
  EngineOptions o;
  o.policy.downtime_limit_ms = 100;
  o.policy.max_iterations = 12;
  o.policy.on_limit = OnLimit::kForceSwitchover;
  o.rearm_chunk_bytes = 8 << 20;
  return o;
}

void ExpectVerified(const Result<MigrationOutcome>& o) {
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_TRUE(o->verified) << o->mismatch;
  EXPECT_GT(o->switchover.total_stream_bytes, 0u);
  EXPECT_GT(o->switchover.device_bytes, 0u);
}

class PrecopyEngineTest : public ::testing::Test {
 protected:
  void SetUp() override { std::signal(SIGPIPE, SIG_IGN); }
};

TEST_F(PrecopyEngineTest, MigratesMicroVmThroughMemoryTransport) {
  CONVERGE_SKIP_WITHOUT_KVM();
  auto rig = NewRig(SmallRig());
  ASSERT_NE(rig, nullptr);
  ExpectVerified(rig->MigrateInMemory(QuickEngine()));
}

TEST_F(PrecopyEngineTest, PipelineMigratesMicroVmOverLoopbackTcp) {
  CONVERGE_SKIP_WITHOUT_KVM();
  auto rig = NewRig(SmallRig());
  ASSERT_NE(rig, nullptr);
  Result<MigrationOutcome> o = rig->MigrateOverTcp(QuickEngine());
  ExpectVerified(o);
  if (o.ok()) {
    EXPECT_GT(o->measured_downtime_ms, 0);
    EXPECT_GE(o->destination.ready_ns, o->switchover.last_byte_ns);
  }
}

TEST_F(PrecopyEngineTest, PipelineMigratesWithDirtyRingSource) {
  CONVERGE_SKIP_WITHOUT_KVM();
  auto rig = NewRig(SmallRig(/*dirty_ring=*/true));
  ASSERT_NE(rig, nullptr);
  ExpectVerified(rig->MigrateOverTcp(QuickEngine()));
}

TEST_F(PrecopyEngineTest, BudgetedIterationsStillVerify) {
  CONVERGE_SKIP_WITHOUT_KVM();
  auto rig = NewRig(SmallRig());
  ASSERT_NE(rig, nullptr);
  EngineOptions o = QuickEngine();
  o.policy.iteration_budget_bytes = 4 << 20;
  o.policy.max_iterations = 40;
  uint64_t exhausted = 0;
  o.progress = [&](const IterationStats& s) {
    exhausted += s.budget_exhausted;
    EXPECT_LE(s.stream_bytes, (4u << 20) + (2u << 20)) << s.iteration;
    EXPECT_EQ(IterationStatsJson(s).find('\n'), std::string::npos);
  };
  ExpectVerified(rig->MigrateInMemory(o));
  EXPECT_GT(exhausted, 0u);
}

// The data_fd pipe holds 1 MiB of a 16 MiB initial state and is refilled
// only as it is read: an iteration must keep reading while PRECOPY_INFO
// reports bytes, not stop at the first empty pipe.
TEST_F(PrecopyEngineTest, DrainsDeviceStateLargerThanItsPipeInPrecopy) {
  CONVERGE_SKIP_WITHOUT_KVM();
  RigOptions r = SmallRig();
  r.num_devices = 1;
  r.device.precopy_initial_bytes = 16 << 20;
  r.device.pipe_bytes = 1 << 20;
  auto rig = NewRig(r);
  ASSERT_NE(rig, nullptr);
  EngineOptions o = QuickEngine();
  o.policy.max_iterations = 4;
  uint64_t precopy_device_bytes = 0;
  o.progress = [&](const IterationStats& s) {
    precopy_device_bytes += s.device_bytes;
  };
  ExpectVerified(rig->MigrateInMemory(o));
  EXPECT_GE(precopy_device_bytes, uint64_t{16} << 20);
}

TEST_F(PrecopyEngineTest, DevicesWithoutPrecopySendAllInStopCopy) {
  CONVERGE_SKIP_WITHOUT_KVM();
  RigOptions r = SmallRig();
  r.device.migration_flags = VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P;
  auto rig = NewRig(r);
  ASSERT_NE(rig, nullptr);
  ExpectVerified(rig->MigrateInMemory(QuickEngine()));
}

TEST_F(PrecopyEngineTest, StatsJsonIsOneObjectPerLine) {
  IterationStats s;
  s.iteration = 3;
  s.verdict = Verdict::kReady;
  const std::string j = IterationStatsJson(s);
  EXPECT_EQ(j.front(), '{');
  EXPECT_EQ(j.back(), '}');
  EXPECT_NE(j.find("\"iteration\":3"), std::string::npos);
  EXPECT_NE(j.find("\"verdict\":\"ready\""), std::string::npos) << j;
  SwitchoverStats w;
  w.reason = "a \"quoted\"\nreason";
  const std::string k = SwitchoverStatsJson(w);
  EXPECT_NE(k.find("a \\\"quoted\\\"\\u000areason"), std::string::npos) << k;
}

}  // namespace
}  // namespace converge
