#include "engine/policy.h"

#include <gtest/gtest.h>

#include <ostream>
#include <string>

namespace converge {

void PrintTo(Action a, std::ostream* os) { *os << ActionName(a); }

namespace {

Estimate MakeEstimate(Verdict verdict) {
  Estimate e;
  e.verdict = verdict;
  e.predicted_downtime_ms = verdict == Verdict::kReady ? 120 : 900;
  e.switchover_ack_satisfied = true;
  if (verdict == Verdict::kStalled || verdict == Verdict::kNeverConverges) {
    e.cause = StallCause::kPerpetuallyDirtySource;
    e.cause_name = "vfio-type1";
    e.smallest_reachable_limit_ms = 510.5;
  }
  if (verdict == Verdict::kConverging) e.iterations_to_go = 4;
  return e;
}

struct Case {
  const char* name;
  Verdict verdict;
  MigrationProgress progress;
  PolicyOptions options;
  Action want;
  const char* reason_has;
};

PolicyOptions With(void (*mutate)(PolicyOptions&)) {
  PolicyOptions o;
  mutate(o);
  return o;
}

TEST(PolicyTest, Decisions) {
  const PolicyOptions defaults;
  const PolicyOptions capped = With([](PolicyOptions& o) {
    o.max_iterations = 10;
    o.max_total_time_ms = 60'000;
  });
  const PolicyOptions force = With([](PolicyOptions& o) {
    o.max_iterations = 10;
    o.on_limit = OnLimit::kForceSwitchover;
  });
  const PolicyOptions abort_on_stall =
      With([](PolicyOptions& o) { o.on_stall = OnStall::kAbort; });
  const Case cases[] = {
      {"ready", Verdict::kReady, {3, 1000}, defaults, Action::kSwitchover,
       "ready: predicted downtime 120.0 ms within the limit of 300.0 ms"},
      {"ready beats limits", Verdict::kReady, {10, 1000}, capped,
       Action::kSwitchover, "ready"},
      {"converging", Verdict::kConverging, {3, 1000}, defaults,
       Action::kContinue, "4 iterations to go"},
      {"measuring", Verdict::kMeasuring, {0, 10}, defaults, Action::kContinue,
       "measuring"},
      {"iterations run out", Verdict::kConverging, {10, 1000}, capped,
       Action::kAbort, "max iterations (10) reached"},
      {"time runs out", Verdict::kConverging, {3, 60'000}, capped,
       Action::kAbort, "max total time (60000 ms) reached"},
      {"forced switchover", Verdict::kConverging, {10, 1000}, force,
       Action::kForceSwitchover, "predicted downtime 900.0 ms over 300.0 ms"},
      {"stalled keeps going", Verdict::kStalled, {3, 1000}, defaults,
       Action::kContinue,
       "stalled (perpetually dirty source vfio-type1): smallest reachable "
       "limit 510.5 ms"},
      {"stalled aborts", Verdict::kStalled, {3, 1000}, abort_on_stall,
       Action::kAbort, "stalled"},
      {"never converges aborts", Verdict::kNeverConverges, {3, 1000},
       abort_on_stall, Action::kAbort, "never-converges"},
  };
  for (const Case& c : cases) {
    MigrationPolicy policy(c.options);
    SwitchoverDecision d =
        policy.ShouldSwitchover(MakeEstimate(c.verdict), c.progress);
    EXPECT_EQ(d.action, c.want) << c.name;
    EXPECT_NE(d.reason.find(c.reason_has), std::string::npos)
        << c.name << ": " << d.reason;
  }
}

TEST(PolicyTest, WaitingForTheAckIsExplained) {
  PolicyOptions o;
  o.switchover_ack_required = true;
  Estimate e = MakeEstimate(Verdict::kConverging);
  e.switchover_ack_satisfied = false;
  SwitchoverDecision d = MigrationPolicy(o).ShouldSwitchover(e, {2, 100});
  EXPECT_EQ(d.action, Action::kContinue);
  EXPECT_NE(d.reason.find("initial_bytes"), std::string::npos) << d.reason;
}

TEST(PolicyTest, EstimatorOptionsFollowThePolicy) {
  PolicyOptions o;
  o.downtime_limit_ms = 50;
  o.bandwidth_cap_bps = 1e9;
  o.switchover_ack_required = false;
  Estimator::Options base;
  base.stall_syncs = 7;
  Estimator::Options eo = MigrationPolicy(o).EstimatorOptions(base);
  EXPECT_EQ(eo.downtime_limit_ms, 50);
  EXPECT_EQ(eo.bandwidth_cap_bps, 1e9);
  EXPECT_FALSE(eo.switchover_ack_required);
  EXPECT_EQ(eo.stall_syncs, 7u);
}

TEST(PolicyTest, OptionsAreValidated) {
  EXPECT_TRUE(MigrationPolicy::Validate(PolicyOptions()).ok());
  PolicyOptions o;
  o.downtime_limit_ms = -1;
  Status s = MigrationPolicy::Validate(o);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("downtime_limit_ms"), std::string::npos);
  o = PolicyOptions();
  o.bandwidth_cap_bps = -5;
  s = MigrationPolicy::Validate(o);
  EXPECT_NE(s.message().find("bandwidth_cap_bps"), std::string::npos);
  o = PolicyOptions();
  o.iteration_budget_ms = 0;
  o.iteration_budget_bytes = 0;
  EXPECT_TRUE(MigrationPolicy::Validate(o).ok());
}

}  // namespace
}  // namespace converge
