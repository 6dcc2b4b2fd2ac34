// MigrationPolicy: when a pre-copy migration switches over, gives up, or
// keeps iterating, from the Estimator's verdict and the migration's
// progress. The decision carries a reason a person can read.
//
// Thread-safety: immutable after construction; safe to share.

#ifndef CONVERGE_ENGINE_POLICY_H_
#define CONVERGE_ENGINE_POLICY_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"
#include "engine/estimate.h"
#include "engine/estimator.h"

namespace converge {

// What to do when max_iterations or max_total_time_ms runs out.
enum class OnLimit : uint8_t {
  kAbort,              // cancel; the source keeps running
  kForceSwitchover,    // switch over anyway, over the downtime limit
};

// What to do when the estimator says the limit cannot be reached.
enum class OnStall : uint8_t {
  kContinue,  // keep iterating (the caller may throttle, or raise the limit)
  kAbort,     // cancel now instead of waiting for a limit
};

struct PolicyOptions {
  // The downtime the migration aims at (vCPU pause to destination ready).
  // Lower means more iterations and more data sent.
  double downtime_limit_ms = 300;
  // Bytes per second the transport may use; 0 = unlimited. A cap leaves
  // room for the guest's traffic but raises lambda.
  double bandwidth_cap_bps = 0;
  // Iterations before OnLimit applies; 0 = no limit. Each iteration costs a
  // sync and a pass over the dirty set.
  uint64_t max_iterations = 0;
  // Wall time before OnLimit applies; 0 = no limit. Pre-copy costs the
  // guest throughput for as long as it runs.
  uint64_t max_total_time_ms = 0;
  // Switch over only once every device's initial_bytes reached 0 (what the
  // kernel recommends; mlx5 restores faster with it). May wait on a slow
  // device.
  bool switchover_ack_required = true;
  // Per-iteration budget: an iteration stops after this many bytes or
  // milliseconds, whichever comes first; 0 = no bound (send all that is
  // pending). Smaller budgets re-sync more often: fresher estimates, more
  // sync cost.
  uint64_t iteration_budget_bytes = 0;
  uint64_t iteration_budget_ms = 0;
  OnLimit on_limit = OnLimit::kAbort;
  OnStall on_stall = OnStall::kContinue;
};

// Where the migration is.
struct MigrationProgress {
  uint64_t iterations = 0;  // pre-copy iterations done
  uint64_t elapsed_ms = 0;  // since pre-copy started
};

enum class Action : uint8_t {
  kContinue,         // iterate again
  kSwitchover,       // the estimate is ready
  kForceSwitchover,  // a limit ran out and the policy says switch anyway
  kAbort,            // cancel the migration; the source keeps running
};
std::string_view ActionName(Action action);

struct SwitchoverDecision {
  Action action = Action::kContinue;
  std::string reason;
};

class MigrationPolicy {
 public:
  explicit MigrationPolicy(const PolicyOptions& options) : options_(options) {}

  // Checks options; returns an error naming the bad field.
  [[nodiscard]] static Status Validate(const PolicyOptions& options);

  // Estimator options that aim at this policy's limit, cap and ack, on top
  // of `base` for everything else.
  Estimator::Options EstimatorOptions(
      Estimator::Options base = Estimator::Options()) const;

  // The decision after a sync and its estimate.
  SwitchoverDecision ShouldSwitchover(const Estimate& estimate,
                                      const MigrationProgress& progress) const;

  const PolicyOptions& options() const { return options_; }

 private:
  PolicyOptions options_;
};

}  // namespace converge

#endif  // CONVERGE_ENGINE_POLICY_H_
