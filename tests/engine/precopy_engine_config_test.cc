// PrecopyEngine without KVM: option and configuration errors, phase
// checks, and a migration on a virtual clock through a custom RamChannel
// (the shape `converge-bench model` uses), checking that budgets and
// deadlines follow the injected clock.

#include <gtest/gtest.h>

#include <csignal>
#include <memory>
#include <string>
#include <vector>

#include "engine/precopy_engine.h"
#include "sim/emulated_kernel.h"
#include "sim/vfio_device.h"
#include "sim/virtual_clock.h"

namespace converge {
namespace {

constexpr uint64_t kPage = 4096;

// Charges every page 1 us of virtual time and 4 KiB of wire bytes.
class VirtualRamChannel final : public RamChannel {
 public:
  explicit VirtualRamChannel(sim::VirtualClock& clock) : clock_(clock) {}
  Status Attach(StreamWriter&) override {
    attached_ = true;
    return OkStatus();
  }
  Result<RamChannelStats> Send(std::span<DirtyBitmap> bitmaps,
                               const RamChannelBudget& budget) override {
    RamChannelStats s;
    for (DirtyBitmap& b : bitmaps) {
      for (uint64_t p = 0; p < b.num_pages(); ++p) {
        if (!b.Test(p)) continue;
        if (s.wire_bytes >= budget.max_bytes ||
            clock_.NowNs() >= budget.deadline_ns) {
          return s;
        }
        b.ClearRange(p, 1);
        clock_.AdvanceNs(1000);
        s.wire_bytes += kPage;
        ++s.pages;
        ++pages_;
      }
    }
    s.complete = true;
    return s;
  }
  bool attached() const { return attached_; }
  uint64_t pages() const { return pages_; }

 private:
  sim::VirtualClock& clock_;
  bool attached_ = false;
  uint64_t pages_ = 0;
};

// Reports pages [0, hot_pages) of every window dirty on every harvest.
class HotSource final : public DirtySource {
 public:
  explicit HotSource(uint64_t hot_pages) : hot_(hot_pages) {}
  std::string_view name() const override { return "hot"; }
  Status Start(std::span<const GpaRange>, uint64_t) override {
    started_ = true;
    return OkStatus();
  }
  Status Harvest(uint64_t gpa, uint64_t n, DirtyBitmap& out,
                 uint64_t first) override {
    const uint64_t page0 = gpa / kPage;
    if (page0 < hot_) out.SetRange(first, std::min(n, hot_ - page0));
    return OkStatus();
  }
  Status Stop() override {
    started_ = false;
    return OkStatus();
  }
  DirtySourceLimits limits() const override { return {}; }
  bool started() const { return started_; }

 private:
  uint64_t hot_;
  bool started_ = false;
};

class PrecopyEngineConfigTest : public ::testing::Test {
 protected:
  void SetUp() override { std::signal(SIGPIPE, SIG_IGN); }
  Result<std::unique_ptr<PrecopyEngine>> NewEngine(EngineOptions o) {
    if (o.ram_channel == nullptr) o.ram_channel = &channel_;
    return PrecopyEngine::Create(kernel_, clock_, transport_, std::move(o));
  }
  int AddEmulatedDevice(uint64_t flags) {
    sim::VfioDeviceOptions o;
    o.migration_flags = flags;
    o.precopy_initial_bytes = 64 << 10;
    o.stop_copy_bytes = 32 << 10;
    o.dirty_bytes_per_sec = 1 << 20;
    o.clock_ns = [this] { return clock_.NowNs(); };
    devices_.push_back(sim::EmulatedVfioDevice::Create(kernel_, o));
    return kernel_.Install(devices_.back());
  }

  sim::EmulatedKernel kernel_;
  sim::VirtualClock clock_{1'000'000'000};
  MemoryTransport transport_;
  VirtualRamChannel channel_{clock_};
  std::vector<std::shared_ptr<sim::EmulatedVfioDevice>> devices_;
};

TEST_F(PrecopyEngineConfigTest, BadOptionsNameTheField) {
  struct Case {
    const char* field;
    void (*set)(EngineOptions&);
  };
  const Case cases[] = {
      {"page_bytes", [](EngineOptions& o) { o.page_bytes = 1000; }},
      {"harvest_chunk_pages",
       [](EngineOptions& o) { o.harvest_chunk_pages = 0; }},
      {"wws_syncs", [](EngineOptions& o) { o.wws_syncs = 0; }},
      {"pages_per_record", [](EngineOptions& o) { o.ram.pages_per_record = 0; }},
      {"chunk_bytes", [](EngineOptions& o) { o.drain.chunk_bytes = 64 << 20; }},
      {"downtime_limit_ms",
       [](EngineOptions& o) { o.policy.downtime_limit_ms = -5; }},
  };
  for (const Case& c : cases) {
    EngineOptions o;
    c.set(o);
    auto e = NewEngine(o);
    ASSERT_FALSE(e.ok()) << c.field;
    EXPECT_EQ(e.status().code(), StatusCode::kInvalidArgument) << c.field;
    EXPECT_NE(e.status().message().find(c.field), std::string::npos)
        << e.status().ToString();
  }
}

TEST_F(PrecopyEngineConfigTest, BadRegionsAndDevicesAreRefused) {
  auto e = NewEngine({});
  ASSERT_TRUE(e.ok());
  PrecopyEngine& engine = **e;
  EXPECT_FALSE(engine.AddRegion({0, 0, nullptr}).ok());
  EXPECT_FALSE(engine.AddRegion({100, kPage, nullptr}).ok());
  EXPECT_FALSE(engine.AddRegion({0, kPage + 1, nullptr}).ok());
  ASSERT_TRUE(engine.AddRegion({0, 64 * kPage, nullptr}).ok());
  Status overlap = engine.AddRegion({32 * kPage, 64 * kPage, nullptr});
  EXPECT_NE(overlap.message().find("overlaps"), std::string::npos);
  EXPECT_FALSE(engine.AddSource(nullptr).ok());
  EXPECT_EQ(engine.AddDevice("", AddEmulatedDevice(VFIO_MIGRATION_STOP_COPY))
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  const int fd = AddEmulatedDevice(VFIO_MIGRATION_STOP_COPY);
  ASSERT_TRUE(engine.AddDevice("a", fd).ok());
  EXPECT_NE(engine.AddDevice("a", fd).status().message().find("twice"),
            std::string::npos);
  EXPECT_EQ(engine.AddDevice("none", AddEmulatedDevice(0)).status().code(),
            StatusCode::kNotSupported);
  EXPECT_EQ(engine.Sync().status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(engine.Iterate().status().code(), StatusCode::kFailedPrecondition);
  EXPECT_FALSE(engine.Switchover([] { return OkStatus(); }).ok());
}

TEST_F(PrecopyEngineConfigTest, HostlessRegionNeedsACustomChannel) {
  EngineOptions o;
  auto e = PrecopyEngine::Create(kernel_, clock_, transport_, o);
  ASSERT_TRUE(e.ok());
  Status s = (*e)->AddRegion({0, kPage, nullptr});
  EXPECT_NE(s.message().find("host mapping"), std::string::npos);
  EXPECT_EQ((*e)->Start().code(), StatusCode::kInvalidArgument);
}

TEST_F(PrecopyEngineConfigTest, MigratesOnAVirtualClockWithinTheBudget) {
  EngineOptions o;
  o.policy.iteration_budget_ms = 2;  // 2000 pages of virtual time
  o.policy.downtime_limit_ms = 50;
  o.policy.max_iterations = 20;
  o.policy.on_limit = OnLimit::kForceSwitchover;
  o.rearm_chunk_bytes = 0;
  std::vector<IterationStats> seen;
  o.progress = [&](const IterationStats& s) { seen.push_back(s); };
  auto e = NewEngine(o);
  ASSERT_TRUE(e.ok());
  PrecopyEngine& engine = **e;
  HotSource hot(100);
  ASSERT_TRUE(engine.AddRegion({0, 8192 * kPage, nullptr}).ok());
  ASSERT_TRUE(engine.AddSource(&hot).ok());
  ASSERT_TRUE(engine.AddDevice("nic", AddEmulatedDevice(
      VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P |
      VFIO_MIGRATION_PRE_COPY)).ok());
  ASSERT_TRUE(engine.Start().ok());
  EXPECT_TRUE(channel_.attached());
  EXPECT_TRUE(hot.started());
  EXPECT_EQ(devices_[0]->state(), sim::MigState::kPreCopy);
  SwitchoverDecision d;
  for (;;) {
    Result<SyncStats> s = engine.Sync();
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    d = engine.ShouldSwitchover();
    if (d.action != Action::kContinue) break;
    ASSERT_TRUE(engine.Iterate().ok());
  }
  ASSERT_FALSE(seen.empty());
  // 8192 pages at 1 us each: the first pass needs at least four budgets.
  EXPECT_TRUE(seen[0].budget_exhausted);
  EXPECT_LE(seen[0].ram_pages_sent, 2001u);
  EXPECT_GE(seen[0].duration_ns, 2'000'000u);
  bool paused = false;
  Result<SwitchoverStats> sw = engine.Switchover([&] {
    paused = true;
    return OkStatus();
  });
  ASSERT_TRUE(sw.ok()) << sw.status().ToString();
  EXPECT_TRUE(paused);
  EXPECT_EQ(engine.phase(), EnginePhase::kCompleted);
  EXPECT_FALSE(hot.started());
  EXPECT_GE(sw->ram_pages, 100u) << "the hot pages go in the stop phase";
  EXPECT_EQ(sw->ram_ns, sw->ram_pages * 1000) << "virtual time only";
  EXPECT_GT(sw->device_bytes, 0u);
  EXPECT_EQ(channel_.pages(), sw->total_ram_pages);
  EXPECT_GE(sw->total_ram_pages, 8192u);
  EXPECT_NE(SwitchoverStatsJson(*sw).find("\"ram_pages\""), std::string::npos);
  EXPECT_EQ(devices_[0]->state(), sim::MigState::kStop);
}

}  // namespace
}  // namespace converge
