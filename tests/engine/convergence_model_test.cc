#include "engine/convergence_model.h"

#include <gtest/gtest.h>

#include <cmath>

#include "engine/rate_meter.h"

namespace converge {
namespace {

constexpr double kB = 1e9;  // bytes per second

TEST(ConvergenceModelTest, DowntimeAndBudgetAreInverse) {
  StopPhase ph{/*dirty_rate_bps=*/1e8, /*exposure_s=*/0.01, kB,
               /*fixed_ms=*/20};
  EXPECT_DOUBLE_EQ(PredictDowntimeMs(5e8, ph), (5e8 + 1e6) / kB * 1000 + 20);
  double budget = BudgetBytes(300, ph);
  EXPECT_DOUBLE_EQ(budget, 0.28 * kB - 1e6);
  EXPECT_NEAR(PredictDowntimeMs(budget, ph), 300, 1e-9);
  EXPECT_LT(BudgetBytes(10, ph), 0);  // fixed costs alone miss 10 ms
}

struct ForecastCase {
  const char* name;
  double pending, floor, budget, lambda;
  bool converges;
  uint64_t iterations;
};

TEST(ConvergenceModelTest, ForecastEdgeCases) {
  const ForecastCase cases[] = {
      {"already within budget", 1e8, 0, 2e8, 0.5, true, 0},
      {"nothing is dirtied", 1e9, 0, 2e8, 0.0, true, 1},
      {"halving from 8x the budget", 8e8, 0, 1e8, 0.5, true, 3},
      {"floor above budget", 1e9, 3e8, 2e8, 0.1, false, 0},
      {"floor equal to budget", 1e9, 2e8, 2e8, 0.1, false, 0},
      {"lambda one", 1e9, 0, 2e8, 1.0, false, 0},
      {"lambda above one", 1e9, 0, 2e8, 1.5, false, 0},
      {"floor below budget", 1e9, 1e8, 2e8, 0.5, true, 4},
  };
  for (const ForecastCase& c : cases) {
    Forecast f = ForecastIterations(c.pending, c.floor, c.budget, c.lambda, kB);
    EXPECT_EQ(f.iterations.has_value(), c.converges) << c.name;
    if (!c.converges || !f.iterations) continue;
    EXPECT_EQ(*f.iterations, c.iterations) << c.name;
    // The model's own pending after n iterations is within the budget, and
    // after n - 1 it is not.
    double n = static_cast<double>(*f.iterations);
    auto pending_after = [&](double k) {
      return c.floor + (c.pending - c.floor) * std::pow(c.lambda, k);
    };
    EXPECT_LE(pending_after(n), c.budget) << c.name;
    if (n > 0) {
      EXPECT_GT(pending_after(n - 1), c.budget) << c.name;
    }
  }
  // 8e8 at lambda 0.5: 8e8 + 4e8 + 2e8 bytes sent in 1.4 s.
  Forecast f = ForecastIterations(8e8, 0, 1e8, 0.5, kB);
  ASSERT_TRUE(f.time_ms.has_value());
  EXPECT_NEAR(*f.time_ms, 1400, 1e-9);
}

TEST(ConvergenceModelTest, ThrottleForTheFloor) {
  ThrottleInputs in;
  in.limit_ms = 300;
  in.phase = StopPhase{2e8, 0.0, kB, 0};
  in.guest_rate_bps = 2e8;
  in.guest_floor_bytes = 6e8;  // 600 ms of floor; 300 ms fit
  std::optional<double> p = ThrottleForLimit(in);
  ASSERT_TRUE(p.has_value());
  EXPECT_DOUBLE_EQ(*p, 0.5);
}

TEST(ConvergenceModelTest, ThrottleForTheRate) {
  // Floor fits, but the guest dirties at 1.5x the bandwidth: the throttled
  // rate must come down to 0.9x.
  ThrottleInputs in;
  in.limit_ms = 300;
  in.phase = StopPhase{1.5e9, 0.0, kB, 0};
  in.guest_rate_bps = 1.5e9;
  std::optional<double> p = ThrottleForLimit(in);
  ASSERT_TRUE(p.has_value());
  EXPECT_NEAR(*p, 0.4, 1e-12);
}

TEST(ConvergenceModelTest, NoThrottleHelpsUnthrottleableParts) {
  ThrottleInputs in;
  in.limit_ms = 300;
  in.phase = StopPhase{2e8, 0.0, kB, 0};
  in.guest_rate_bps = 1e8;
  in.fixed_floor_bytes = 4e8;  // device state: 400 ms on its own
  EXPECT_FALSE(ThrottleForLimit(in).has_value());

  ThrottleInputs rate;
  rate.limit_ms = 300;
  rate.phase = StopPhase{2e9, 0.0, kB, 0};
  rate.guest_rate_bps = 0;  // all of it device DMA
  EXPECT_FALSE(ThrottleForLimit(rate).has_value());

  ThrottleInputs too_much = rate;
  too_much.guest_rate_bps = 2e9;
  too_much.phase.dirty_rate_bps = 2e9;
  too_much.guest_floor_bytes = 1e12;
  EXPECT_FALSE(ThrottleForLimit(too_much).has_value());  // p > 0.99
}

TEST(ConvergenceModelTest, EwmaAndWindows) {
  Ewma e(0.25);
  EXPECT_FALSE(e.has_value());
  e.Add(100);
  EXPECT_DOUBLE_EQ(e.value(), 100);
  e.Add(200);
  EXPECT_DOUBLE_EQ(e.value(), 125);

  WindowedRate r(100, 1.0);
  r.Add(1000, 60);
  EXPECT_FALSE(r.measured());
  r.Add(1000, 40);
  EXPECT_TRUE(r.measured());
  EXPECT_DOUBLE_EQ(r.bytes_per_second(), 2000 * 1e9 / 100);
  EXPECT_EQ(r.windows(), 1u);
}

}  // namespace
}  // namespace converge
