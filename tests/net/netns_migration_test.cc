// A whole migration of the micro-VM between two network namespaces: the
// source engine writes a SocketTransport made on side A, the destination
// reads one made on side B, over a veth pair shaped to 1 Gbit/s by tbf.
// Checks the destination byte for byte, the engine's bandwidth estimate
// against the shaped rate, and what a link that drops mid-migration leaves
// behind: an error naming the cause, the source VM running with its devices
// RUNNING and logging stopped, and a second migration that verifies.

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "io/socket_transport.h"
#include "tests/engine/migration_rig.h"
#include "tests/fault/fault_rig.h"
#include "tests/net/netns_pair.h"
#include "tests/net/tcp_connection.h"
#include "tests/vm/kvm_test_support.h"

namespace converge::testing {
namespace {

using Side = NetnsPair::Side;

// 256 MiB of RAM with no zero pages and two devices of 16 MiB initial
// state: the first pass is ~290 MB, about 2.5 s at 1 Gbit/s, so the
// bandwidth windows see the link, not socket buffers. The guest rewrites
// 2,000 random pages per second (8 MB/s, well under the link).
RigOptions NetRigOptions() {
  RigOptions o;
  o.ram_bytes = uint64_t{256} << 20;
  o.fill.zero_fraction = 0;  // codec none: every page is on the wire
  o.num_devices = 2;
  o.device.precopy_initial_bytes = 16 << 20;
  o.device.stop_copy_bytes = 4 << 20;
  o.device.dirty_bytes_per_sec = 1 << 20;
  o.device.max_dirty_bytes = 4 << 20;
  o.workload.kind = GuestWorkload::kRandom;
  o.workload.rate_pages_per_s = 2000;
  return o;
}

// Uncompressed, so raw bytes and wire bytes agree and the estimate can be
// compared with the link's rate.
EngineOptions NetEngineOptions() {
  EngineOptions o;
  o.codec = CodecOptions{Codec::kNone, 1};
  o.policy.downtime_limit_ms = 300;
  o.policy.max_iterations = 30;
  o.policy.on_limit = OnLimit::kForceSwitchover;
  return o;
}

// Transports for both ends of one TCP connection across the pair, the
// sender on side A.
struct Ends {
  std::unique_ptr<SocketTransport> send;
  std::unique_ptr<SocketTransport> receive;
};

Result<Ends> Connect(NetnsPair& pair) {
  CONVERGE_ASSIGN_OR_RETURN(TcpConnection conn,
                            TcpConnection::Open(pair, Side::kA, {}));
  Ends ends;
  CONVERGE_ASSIGN_OR_RETURN(
      ends.send, SocketTransport::FromFd(conn.ReleaseClient(), "A to B"));
  CONVERGE_ASSIGN_OR_RETURN(
      ends.receive,
      SocketTransport::FromFd(conn.ReleaseServer(), "B from A"));
  return ends;
}

// A shaped pair, the rig on it, and one connection from A to B.
class NetnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CONVERGE_SKIP_WITHOUT_NETNS();
    CONVERGE_SKIP_WITHOUT_KVM();
    NetnsPair::Options options;
    options.shaped = true;  // 1 Gbit/s tbf on both ends
    Result<std::unique_ptr<NetnsPair>> pair = NetnsPair::Create(options);
    ASSERT_TRUE(pair.ok()) << pair.status().ToString();
    pair_ = std::move(*pair);
    shaped_bps_ = double(options.shape.rate_bps);
    rig_ = NewRig(NetRigOptions());
    ASSERT_NE(rig_, nullptr);
    Result<Ends> ends = Connect(*pair_);
    ASSERT_TRUE(ends.ok()) << ends.status().ToString();
    ends_ = std::move(*ends);
  }

  std::unique_ptr<NetnsPair> pair_;
  std::unique_ptr<MigrationRig> rig_;
  Ends ends_;
  double shaped_bps_ = 0;
};

TEST_F(NetnsTest, MigratesMicroVmOverShapedGigabitLink) {
  Result<MigrationOutcome> o =
      rig_->MigrateOver(*ends_.send, *ends_.receive, NetEngineOptions());
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_TRUE(o->verified) << o->mismatch;
  EXPECT_TRUE(o->destination.summary.complete);

  ASSERT_TRUE(o->decided.bandwidth_measured);
  const double estimate = o->decided.bandwidth_bps;
  std::printf("migration over tbf %.0f B/s: %llu iterations, bandwidth "
              "estimate %.1f MB/s (%.1f%% of shaped), predicted downtime "
              "%.1f ms, measured %.1f ms\n",
              shaped_bps_, static_cast<unsigned long long>(o->iterations),
              estimate / 1e6, 100 * estimate / shaped_bps_,
              o->decided.predicted_downtime_ms, o->measured_downtime_ms);
  RecordProperty("bandwidth_estimate_bps", std::to_string(uint64_t(estimate)));
  EXPECT_NEAR(estimate, shaped_bps_, 0.15 * shaped_bps_)
      << "the engine estimated " << estimate / 1e6
      << " MB/s over a link shaped to " << shaped_bps_ / 1e6 << " MB/s";
}

TEST_F(NetnsTest, LinkDropMidMigrationAbortsAndTheSourceRunsOn) {
  // The link goes down once the first iteration is on the wire: the next
  // write, or the switchover's, fails once the kernel drops the route or
  // TCP_USER_TIMEOUT (2 s here) aborts the unacknowledged connection.
  EngineOptions options = NetEngineOptions();
  Status dropped = UnavailableError("the link was never dropped");
  std::atomic<uint64_t> iterations{0};
  options.progress = [&](const IterationStats&) {
    if (iterations.fetch_add(1) == 0) dropped = pair_->DropLink();
  };
  std::unique_ptr<PrecopyEngine> engine;
  Result<MigrationOutcome> o = rig_->MigrateOver(
      *ends_.send, *ends_.receive, std::move(options), &engine);
  ASSERT_TRUE(dropped.ok()) << dropped.ToString();
  ASSERT_FALSE(o.ok()) << "migrated over a dead link";
  std::printf("link dropped after iteration 1: %s\n",
              o.status().ToString().c_str());
  // Unacknowledged data times out, or the route went with the link.
  const int err = o.status().sys_errno();
  EXPECT_TRUE(err == ETIMEDOUT || err == ENETUNREACH || err == EHOSTUNREACH)
      << o.status().ToString();
  EXPECT_NE(o.status().message().find("A to B"), std::string::npos)
      << "the error should name the connection: " << o.status().ToString();
  ASSERT_NE(engine, nullptr);

  // Cancel as a VMM would; the source runs on with nothing lost: a second
  // migration over the restored link (a new connection) verifies.
  ExpectSourceRecovers(*rig_, std::move(engine));
  ASSERT_TRUE(pair_->RestoreLink().ok());
  Result<Ends> again = Connect(*pair_);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  Result<MigrationOutcome> second = rig_->MigrateOver(
      *again->send, *again->receive, NetEngineOptions());
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_TRUE(second->verified) << second->mismatch;
}

}  // namespace
}  // namespace converge::testing
