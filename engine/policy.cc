#include "engine/policy.h"

#include <cstdio>

namespace converge {
namespace {

std::string Ms(double ms) {
  char buf[32];
  snprintf(buf, sizeof buf, "%.1f ms", ms);
  return buf;
}

}  // namespace

std::string_view ActionName(Action action) {
  switch (action) {
    case Action::kContinue: return "continue";
    case Action::kSwitchover: return "switchover";
    case Action::kForceSwitchover: return "forced switchover";
    case Action::kAbort: return "abort";
  }
  return "invalid";
}

Status MigrationPolicy::Validate(const PolicyOptions& o) {
  if (!(o.downtime_limit_ms > 0)) {
    return InvalidArgumentError("policy: downtime_limit_ms must be > 0");
  }
  if (!(o.bandwidth_cap_bps >= 0)) {
    return InvalidArgumentError("policy: bandwidth_cap_bps must be >= 0");
  }
  return OkStatus();
}

Estimator::Options MigrationPolicy::EstimatorOptions(
    Estimator::Options base) const {
  base.downtime_limit_ms = options_.downtime_limit_ms;
  base.bandwidth_cap_bps = options_.bandwidth_cap_bps;
  base.switchover_ack_required = options_.switchover_ack_required;
  return base;
}

SwitchoverDecision MigrationPolicy::ShouldSwitchover(
    const Estimate& e, const MigrationProgress& progress) const {
  const std::string predicted = Ms(e.predicted_downtime_ms);
  const std::string limit = Ms(options_.downtime_limit_ms);
  if (e.verdict == Verdict::kReady) {
    return {Action::kSwitchover, "ready: predicted downtime " + predicted +
                                     " within the limit of " + limit};
  }

  std::string ran_out;
  if (options_.max_iterations > 0 &&
      progress.iterations >= options_.max_iterations) {
    ran_out = "max iterations (" + std::to_string(options_.max_iterations) +
              ") reached";
  } else if (options_.max_total_time_ms > 0 &&
             progress.elapsed_ms >= options_.max_total_time_ms) {
    ran_out = "max total time (" +
              std::to_string(options_.max_total_time_ms) + " ms) reached";
  }
  if (!ran_out.empty()) {
    std::string why = ran_out + " with verdict " +
                      std::string(VerdictName(e.verdict)) +
                      ", predicted downtime " + predicted + " over " + limit;
    if (options_.on_limit == OnLimit::kForceSwitchover) {
      return {Action::kForceSwitchover, why};
    }
    return {Action::kAbort, why};
  }

  if (e.verdict == Verdict::kStalled ||
      e.verdict == Verdict::kNeverConverges) {
    std::string why = std::string(VerdictName(e.verdict)) + " (" +
                      std::string(StallCauseName(e.cause)) +
                      (e.cause_name.empty() ? "" : " " + e.cause_name) +
                      "): smallest reachable limit " +
                      Ms(e.smallest_reachable_limit_ms) + ", asked " + limit;
    if (options_.on_stall == OnStall::kAbort) return {Action::kAbort, why};
    return {Action::kContinue, why};
  }
  if (e.verdict == Verdict::kMeasuring) {
    return {Action::kContinue, "measuring: no full bandwidth window yet"};
  }
  std::string why = "converging: predicted downtime " + predicted + " over " +
                    limit;
  if (e.iterations_to_go) {
    why += ", " + std::to_string(*e.iterations_to_go) + " iterations to go";
  }
  if (options_.switchover_ack_required && !e.switchover_ack_satisfied) {
    why += ", waiting for every device's initial_bytes to reach 0";
  }
  return {Action::kContinue, why};
}

}  // namespace converge
