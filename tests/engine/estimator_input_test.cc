#include "engine/estimator.h"

#include <gtest/gtest.h>

#include <string>

namespace converge {
namespace {

constexpr uint64_t kS = 1'000'000'000;

SyncSample Sample(uint64_t now_ns, uint64_t pending_pages,
                  uint64_t dirtied_pages) {
  SyncSample s;
  s.now_ns = now_ns;
  s.page_size_bytes = 4096;
  s.ram_pending_pages = pending_pages;
  s.dirtied_pages = dirtied_pages;
  return s;
}

struct BadSample {
  const char* what;
  SyncSample sample;
  const char* needle;
};

TEST(EstimatorTest, BadSamplesAreRejectedWithAReason) {
  Estimator est;
  est.AddSource("kvm", 100, true);
  SyncSample good = Sample(5 * kS, 1, 1);
  good.source_pages = {1};
  ASSERT_TRUE(est.RecordSync(good).ok());
  SyncSample no_sources = Sample(6 * kS, 1, 1);
  SyncSample devices = good;
  devices.now_ns = 6 * kS;
  devices.devices = {DeviceSample{}};
  SyncSample backwards = good;
  SyncSample too_many = good;
  too_many.now_ns = 6 * kS;
  too_many.source_pages = {101};
  SyncSample zero_page = good;
  zero_page.now_ns = 6 * kS;
  zero_page.page_size_bytes = 0;
  const BadSample cases[] = {
      {"source count", no_sources, "registered sources"},
      {"device count", devices, "registered devices"},
      {"clock", backwards, "did not advance"},
      {"over tracked", too_many, "kvm reported 101 pages but tracks 100"},
      {"page size", zero_page, "page_size_bytes"},
  };
  for (const BadSample& c : cases) {
    Status s = est.RecordSync(c.sample);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << c.what;
    EXPECT_NE(s.message().find(c.needle), std::string::npos)
        << c.what << ": " << s.ToString();
  }
  EXPECT_EQ(est.syncs(), 1u);
}

TEST(EstimatorTest, OptionsAreValidated) {
  struct Case {
    void (*mutate)(Estimator::Options&);
    const char* field;
  };
  const Case cases[] = {
      {[](Estimator::Options& o) { o.downtime_limit_ms = 0; },
       "downtime_limit_ms"},
      {[](Estimator::Options& o) { o.bandwidth_window_ns = 0; },
       "bandwidth_window_ns"},
      {[](Estimator::Options& o) { o.smoothing_weight = 0; },
       "smoothing_weight"},
      {[](Estimator::Options& o) { o.stall_syncs = 0; }, "stall_syncs"},
      {[](Estimator::Options& o) { o.max_throttle = 1; }, "max_throttle"},
      {[](Estimator::Options& o) { o.throttle_max_lambda = 1; },
       "throttle_max_lambda"},
  };
  EXPECT_TRUE(Estimator::Validate(Estimator::Options()).ok());
  for (const Case& c : cases) {
    Estimator::Options o;
    c.mutate(o);
    Status s = Estimator::Validate(o);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find(c.field), std::string::npos) << s.ToString();
  }
}

}  // namespace
}  // namespace converge
