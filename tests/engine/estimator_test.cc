#include "engine/estimator.h"

#include <gtest/gtest.h>

#include <cmath>
#include <ostream>
#include <string>
#include <vector>

namespace converge {

// Readable gtest output for the enums.
void PrintTo(Verdict v, std::ostream* os) { *os << VerdictName(v); }
void PrintTo(StallCause c, std::ostream* os) { *os << StallCauseName(c); }

namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t kS = 1'000'000'000;
// 200000 pages per second; every rate below is a whole number of pages.
constexpr double kBandwidth = 200000.0 * kPage;  // 819.2e6 B/s

// Fixed costs recorded as measured: final sync 2 ms, destination apply
// 8 ms, nothing for devices: 10 ms in all.
void RecordFixedCosts(Estimator& est) {
  est.RecordFixedCost(FixedCost::kFinalSync, 2 * kMs);
  est.RecordFixedCost(FixedCost::kDeviceStop, 0);
  est.RecordFixedCost(FixedCost::kDrainLatency, 0);
  est.RecordFixedCost(FixedCost::kDestinationApply, 8 * kMs);
}

// Sends `bytes` at exactly kBandwidth, in 200 ms windows.
void SendAtBandwidth(Estimator& est, double bytes) {
  uint64_t ns = static_cast<uint64_t>(bytes / kBandwidth * 1e9);
  est.RecordSent(static_cast<uint64_t>(bytes), ns);
}

SyncSample Sample(uint64_t now_ns, uint64_t pending_pages,
                  uint64_t dirtied_pages, uint64_t wws_pages = 0) {
  SyncSample s;
  s.now_ns = now_ns;
  s.sync_ns = 2 * kMs;
  s.page_size_bytes = kPage;
  s.ram_pending_pages = pending_pages;
  s.dirtied_pages = dirtied_pages;
  s.wws_pages = wws_pages;
  return s;
}

// Budget for a 300 ms limit with the fixed costs above: (300 - 10) ms of
// bandwidth less what the guest dirties during the 2 ms final sync.
double Budget(double dirty_bps) {
  return 0.290 * kBandwidth - dirty_bps * 0.002;
}

// Constant dirty rate of a quarter of the bandwidth (lambda = 0.25); every
// iteration sends all that is pending, so pending shrinks by lambda.
TEST(EstimatorTest, ConstantRateConvergesAsTheGeometricModelSays) {
  Estimator est;
  RecordFixedCosts(est);
  const double lambda = 0.25;
  const double dirty_bps = lambda * kBandwidth;  // 50000 pages/s
  uint64_t now = 1 * kS;
  uint64_t pending = 8'000'000;  // pages
  ASSERT_TRUE(est.RecordSync(Sample(now, pending, pending)).ok());
  EXPECT_EQ(est.Current().verdict, Verdict::kMeasuring);

  std::vector<uint64_t> iterations;
  for (int i = 0; i < 8; ++i) {
    double bytes = static_cast<double>(pending * kPage);
    SendAtBandwidth(est, bytes);
    uint64_t interval_ns = static_cast<uint64_t>(bytes / kBandwidth * 1e9);
    now += interval_ns;
    uint64_t dirtied = static_cast<uint64_t>(
        dirty_bps * static_cast<double>(interval_ns) / 1e9 / kPage);
    pending = dirtied;
    ASSERT_TRUE(est.RecordSync(Sample(now, pending, dirtied)).ok());
    Estimate e = est.Current();
    SCOPED_TRACE("iteration " + std::to_string(i) + ": " + e.Summary());
    EXPECT_NEAR(e.bandwidth_bps, kBandwidth, 1.0);
    EXPECT_NEAR(e.dirty_rate_bps, dirty_bps, 1.0);
    EXPECT_NEAR(e.lambda, lambda, 1e-6);
    const double p = static_cast<double>(pending * kPage);
    EXPECT_NEAR(e.predicted_downtime_ms,
                (p + dirty_bps * 0.002) / kBandwidth * 1000 + 10, 1e-6);
    EXPECT_NEAR(e.qemu_expected_downtime_ms, p / kBandwidth * 1000, 1e-6);
    EXPECT_NEAR(e.pending_ratio, lambda, 1e-6);
    if (p <= Budget(dirty_bps)) {
      EXPECT_EQ(e.verdict, Verdict::kReady);
      iterations.push_back(0);
      break;
    }
    ASSERT_EQ(e.verdict, Verdict::kConverging);
    ASSERT_TRUE(e.iterations_to_go.has_value());
    uint64_t want = static_cast<uint64_t>(
        std::ceil(std::log(Budget(dirty_bps) / p) / std::log(lambda)));
    EXPECT_EQ(*e.iterations_to_go, want);
    double want_time_ms = p * (1 - std::pow(lambda, static_cast<double>(want))) /
                          (1 - lambda) / kBandwidth * 1000;
    ASSERT_TRUE(e.time_to_go_ms.has_value());
    EXPECT_NEAR(*e.time_to_go_ms, want_time_ms, 1e-6);
    iterations.push_back(*e.iterations_to_go);
  }
  // 8 GB pending at lambda 0.25 against a ~237 MB budget: 3, 2, 1, ready.
  EXPECT_EQ(iterations, (std::vector<uint64_t>{3, 2, 1, 0}));
}

// lambda 0.25 for three iterations, then 2: the trend flips, and the
// verdict becomes kNeverConverges once the smoothed lambda has stayed >= 1
// for k = 3 syncs.
TEST(EstimatorTest, RisingRateFlipsTheTrend) {
  Estimator est;
  RecordFixedCosts(est);
  uint64_t now = 1 * kS;
  uint64_t pending = 32'000'000;
  ASSERT_TRUE(est.RecordSync(Sample(now, pending, pending)).ok());
  std::vector<Verdict> verdicts;
  std::vector<double> lambdas, ratios;
  const double rates[] = {0.25, 0.25, 0.25, 2, 2, 2, 2};
  for (double lambda : rates) {
    double bytes = static_cast<double>(pending * kPage);
    SendAtBandwidth(est, bytes);
    uint64_t interval_ns = static_cast<uint64_t>(bytes / kBandwidth * 1e9);
    now += interval_ns;
    pending = static_cast<uint64_t>(lambda * static_cast<double>(pending));
    ASSERT_TRUE(est.RecordSync(Sample(now, pending, pending)).ok());
    Estimate e = est.Current();
    verdicts.push_back(e.verdict);
    lambdas.push_back(e.lambda);
    ratios.push_back(e.pending_ratio);
  }
  // Smoothed lambda: 0.25 x3, then 1.125, 1.5625, 1.78125, 1.890625.
  EXPECT_NEAR(lambdas[2], 0.25, 1e-9);
  EXPECT_NEAR(lambdas[3], 1.125, 1e-9);
  EXPECT_NEAR(lambdas[5], 1.78125, 1e-9);
  EXPECT_LT(ratios[2], 1.0);
  EXPECT_NEAR(ratios[4], 2.0, 1e-9);
  const std::vector<Verdict> want = {
      Verdict::kConverging,     Verdict::kConverging,
      Verdict::kConverging,     Verdict::kConverging,
      Verdict::kConverging,     Verdict::kNeverConverges,
      Verdict::kNeverConverges};
  EXPECT_EQ(verdicts, want);
  Estimate e = est.Current();
  EXPECT_EQ(e.cause, StallCause::kGuestDirtyRate);
  EXPECT_FALSE(e.iterations_to_go.has_value());
}

// The guest rewrites a hot set of 100000 pages (409.6 MB) every 2 s sync:
// more than the ~237 MB a 300 ms stop can carry.
TEST(EstimatorTest, WorkingSetFloorStallsWithReachableLimitAndThrottle) {
  Estimator est;
  RecordFixedCosts(est);
  const uint64_t hot = 100000;
  const size_t kvm = est.AddSource("kvm", 1'000'000, /*guest=*/true);
  ASSERT_EQ(kvm, 0u);
  uint64_t now = 1 * kS;
  SyncSample first = Sample(now, 1'000'000, 1'000'000);
  first.source_pages = {1'000'000};
  ASSERT_TRUE(est.RecordSync(first).ok());
  SendAtBandwidth(est, 1e9);
  std::vector<Verdict> verdicts;
  for (int i = 0; i < 5; ++i) {
    now += 2 * kS;
    SyncSample s = Sample(now, hot, hot, hot);
    s.source_pages = {hot};
    ASSERT_TRUE(est.RecordSync(s).ok());
    verdicts.push_back(est.Current().verdict);
  }
  // Unreachable from the first estimate; declared after k = 3 syncs.
  EXPECT_EQ(verdicts, (std::vector<Verdict>{
                          Verdict::kConverging, Verdict::kConverging,
                          Verdict::kStalled, Verdict::kStalled,
                          Verdict::kStalled}));
  Estimate e = est.Current();
  const double dirty_bps = hot * kPage / 2.0;  // 204.8e6 B/s
  const double floor = hot * kPage;
  EXPECT_EQ(e.wws_floor_bytes, hot * kPage);
  EXPECT_EQ(e.floor_bytes, hot * kPage);
  // (409.6e6 + 204.8e6 * 0.002) / 819.2e6 s + 10 ms = 510.5 ms.
  EXPECT_NEAR(e.smallest_reachable_limit_ms, 510.5, 1e-6);
  EXPECT_EQ(e.cause, StallCause::kGuestDirtyRate);
  EXPECT_EQ(e.cause_name, "kvm");
  // Throttle p: (1 - p) * (floor + rate * 2 ms) <= 290 ms * bandwidth
  // -> p = 1 - 237.568e6 / 410.0096e6 = 0.4206 -> 43 %.
  double p = 1 - 0.290 * kBandwidth / (floor + dirty_bps * 0.002);
  EXPECT_NEAR(p, 0.4206, 1e-4);
  ASSERT_TRUE(e.throttle_percent.has_value());
  EXPECT_EQ(*e.throttle_percent, 43);
  EXPECT_NEAR(e.sources[0].dirty_rate_bps, dirty_bps, 1e-6);
}

// A device whose initial_bytes never falls blocks switchover-ack forever.
TEST(EstimatorTest, DeviceThatNeverDrainsIsNamed) {
  Estimator::Options options;
  options.switchover_ack_required = true;
  Estimator est(options);
  RecordFixedCosts(est);
  est.AddDevice("nic0");
  est.AddDevice("gpu0");
  uint64_t now = 1 * kS;
  std::vector<Verdict> verdicts;
  uint64_t nic_initial = 40 << 20;
  for (int i = 0; i < 6; ++i) {
    SyncSample s = Sample(now, 1000, 1000);
    s.devices = {DeviceSample{nic_initial, 0, 1 << 20},
                 DeviceSample{64 << 20, 1 << 20, 16 << 20}};
    nic_initial /= 4;
    ASSERT_TRUE(est.RecordSync(s).ok());
    SendAtBandwidth(est, 200e6);
    now += 1 * kS;
    verdicts.push_back(est.Current().verdict);
  }
  // Predicted downtime is well within 300 ms, but the ack never comes; after
  // k + 1 = 4 samples of gpu0's initial_bytes not falling, it is named.
  EXPECT_EQ(verdicts[2], Verdict::kConverging);
  EXPECT_EQ(verdicts[3], Verdict::kStalled);
  Estimate e = est.Current();
  EXPECT_LT(e.predicted_downtime_ms, 300);
  EXPECT_FALSE(e.switchover_ack_satisfied);
  EXPECT_EQ(e.cause, StallCause::kDeviceNotDraining);
  EXPECT_EQ(e.cause_name, "gpu0");
  EXPECT_FALSE(e.throttle_percent.has_value());
  EXPECT_TRUE(e.devices[0].draining);
  EXPECT_FALSE(e.devices[1].draining);
  EXPECT_EQ(e.device_pending_bytes,
            (nic_initial * 4) + (1u << 20) + (64u << 20) + (1u << 20) +
                (16u << 20));
}

// Devices may report any 64-bit size; the pending total saturates instead of
// wrapping to "almost nothing" (which would switch over far too early).
TEST(EstimatorTest, HugeDeviceSizesSaturateInsteadOfWrapping) {
  Estimator est;
  RecordFixedCosts(est);
  est.AddDevice("nic0");
  est.AddDevice("nic1");
  uint64_t now = 1 * kS;
  const uint64_t huge = uint64_t{1} << 63;
  for (int i = 0; i < 4; ++i) {
    SyncSample s = Sample(now, 1000, 1000);
    s.devices = {DeviceSample{huge, huge, ~uint64_t{0}},
                 DeviceSample{huge, 0, 0}};
    ASSERT_TRUE(est.RecordSync(s).ok());
    SendAtBandwidth(est, 200e6);
    now += 1 * kS;
  }
  Estimate e = est.Current();
  EXPECT_EQ(e.pending_bytes, ~uint64_t{0});
  EXPECT_EQ(e.device_pending_bytes, ~uint64_t{0});
  EXPECT_EQ(e.ram_pending_bytes, 1000 * kPage);
  EXPECT_NE(e.verdict, Verdict::kReady);
  EXPECT_FALSE(std::isnan(e.predicted_downtime_ms));
  EXPECT_GT(e.predicted_downtime_ms, 1e9);
}

TEST(EstimatorTest, DrainedDevicesSatisfyTheAck) {
  Estimator::Options options;
  options.switchover_ack_required = true;
  Estimator est(options);
  RecordFixedCosts(est);
  est.AddDevice("nic0");
  const uint64_t initial[] = {8 << 20, 2 << 20, 0};
  uint64_t now = 1 * kS;
  std::vector<Verdict> verdicts;
  for (uint64_t bytes : initial) {
    SyncSample s = Sample(now, 1000, 1000);
    s.devices = {DeviceSample{bytes, 0, 1 << 20}};
    ASSERT_TRUE(est.RecordSync(s).ok());
    SendAtBandwidth(est, 200e6);
    now += 1 * kS;
    verdicts.push_back(est.Current().verdict);
  }
  EXPECT_EQ(verdicts, (std::vector<Verdict>{Verdict::kMeasuring,
                                            Verdict::kConverging,
                                            Verdict::kReady}));
}

// An IOMMU group without dirty tracking reports all of its 1 GiB every sync.
TEST(EstimatorTest, PerpetuallyDirtySourceIsNamed) {
  Estimator est;
  RecordFixedCosts(est);
  const uint64_t all = 262144;  // 1 GiB of pages
  est.AddSource("kvm", all, /*guest=*/true);
  est.AddSource("vfio-type1", all, /*guest=*/false);
  uint64_t now = 1 * kS;
  for (int i = 0; i < 5; ++i) {
    SyncSample s = Sample(now, all, all, all);
    s.source_pages = {1000, all};
    ASSERT_TRUE(est.RecordSync(s).ok());
    SendAtBandwidth(est, static_cast<double>(all * kPage));
    now += 2 * kS;
  }
  Estimate e = est.Current();
  EXPECT_EQ(e.verdict, Verdict::kStalled) << e.Summary();
  EXPECT_EQ(e.cause, StallCause::kPerpetuallyDirtySource);
  EXPECT_EQ(e.cause_name, "vfio-type1");
  EXPECT_TRUE(e.sources[1].perpetually_dirty);
  EXPECT_FALSE(e.sources[0].perpetually_dirty);
  // Throttling vCPUs cannot shrink what the IOMMU reports.
  EXPECT_FALSE(e.throttle_percent.has_value());
  const double dirty_bps = all * kPage / 2.0;
  EXPECT_NEAR(e.smallest_reachable_limit_ms,
              (all * kPage + dirty_bps * 0.002) / kBandwidth * 1000 + 10,
              1e-6);
}

TEST(EstimatorTest, ShortBandwidthWindowsDoNotUpdate) {
  Estimator est;
  ASSERT_TRUE(est.RecordSync(Sample(1 * kS, 100, 100)).ok());
  ASSERT_TRUE(est.RecordSync(Sample(2 * kS, 100, 100)).ok());
  est.RecordSent(1'000'000, 50 * kMs);
  Estimate e = est.Current();
  EXPECT_FALSE(e.bandwidth_measured);
  EXPECT_EQ(e.verdict, Verdict::kMeasuring);
  est.RecordSent(1'000'000, 50 * kMs);  // window complete: 2 MB in 100 ms
  e = est.Current();
  EXPECT_TRUE(e.bandwidth_measured);
  EXPECT_DOUBLE_EQ(e.bandwidth_bps, 20e6);
  est.RecordSent(100'000'000, 99 * kMs);  // a burst shorter than a window
  EXPECT_DOUBLE_EQ(est.Current().bandwidth_bps, 20e6);
  est.RecordSent(0, 1 * kMs);  // the window closes: 100 MB in 100 ms
  EXPECT_DOUBLE_EQ(est.Current().bandwidth_bps, 0.5 * 20e6 + 0.5 * 1e9);
}

TEST(EstimatorTest, BandwidthCapBoundsThePrediction) {
  Estimator::Options options;
  options.bandwidth_cap_bps = 100e6;
  Estimator est(options);
  ASSERT_TRUE(est.RecordSync(Sample(1 * kS, 100, 100)).ok());
  ASSERT_TRUE(est.RecordSync(Sample(2 * kS, 100, 100)).ok());
  SendAtBandwidth(est, 1e9);
  EXPECT_DOUBLE_EQ(est.Current().bandwidth_bps, 100e6);
}

TEST(EstimatorTest, FixedCostsAreInThePrediction) {
  Estimator est;
  est.AddDevice("nic0");
  const uint64_t now = 1 * kS;
  for (int i = 0; i < 2; ++i) {
    SyncSample s = Sample(now + i * kS, 1000, 1000);
    s.sync_ns = 3 * kMs;
    s.devices = {DeviceSample{0, 0, 1 << 20}};
    ASSERT_TRUE(est.RecordSync(s).ok());
  }
  SendAtBandwidth(est, 1e9);
  Estimate priors = est.Current();
  EXPECT_FALSE(priors.fixed_costs_measured);
  // Priors: final sync = the measured sync time (3 ms), device stop 5 ms,
  // drain 1 ms per device, destination apply 5 ms.
  EXPECT_NEAR(priors.fixed_costs_ms, 14, 1e-9);
  const double rate = 1000.0 * kPage;  // bytes per second
  const double pending = 1000.0 * kPage + (1 << 20);
  EXPECT_NEAR(priors.predicted_downtime_ms,
              (pending + rate * 0.003) / kBandwidth * 1000 + 14, 1e-9);

  est.RecordFixedCost(FixedCost::kDestinationApply, 50 * kMs);
  EXPECT_NEAR(est.Current().predicted_downtime_ms,
              priors.predicted_downtime_ms + 45, 1e-9);
  est.RecordFixedCost(FixedCost::kDeviceStop, 20 * kMs);
  est.RecordFixedCost(FixedCost::kDrainLatency, 1 * kMs);
  est.RecordFixedCost(FixedCost::kFinalSync, 13 * kMs);
  Estimate measured = est.Current();
  EXPECT_TRUE(measured.fixed_costs_measured);
  EXPECT_NEAR(measured.fixed_costs_ms, 13 + 20 + 1 + 50, 1e-9);
  // A longer final sync also lets the guest dirty more before the stop.
  EXPECT_NEAR(measured.dirtied_during_stop_bytes, rate * 0.013, 1e-6);
  EXPECT_NEAR(measured.predicted_downtime_ms,
              (pending + rate * 0.013) / kBandwidth * 1000 + 84, 1e-9);
}

TEST(EstimatorTest, FixedCostsAboveTheLimitAreTheCause) {
  Estimator est;
  est.RecordFixedCost(FixedCost::kDestinationApply, 400 * kMs);
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(est.RecordSync(Sample((i + 1) * kS, 10, 10)).ok());
    SendAtBandwidth(est, 1e8);
  }
  Estimate e = est.Current();
  EXPECT_EQ(e.verdict, Verdict::kStalled);
  EXPECT_EQ(e.cause, StallCause::kFixedCosts);
  EXPECT_FALSE(e.throttle_percent.has_value());
}

}  // namespace
}  // namespace converge
