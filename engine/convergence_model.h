// The formulas behind the convergence estimator (docs/estimator.md), as
// pure functions so each can be checked by hand.
//
// Units: bytes, seconds (_s), milliseconds (_ms); rates in bytes per
// second (_bps here always means BYTES per second).
//
// Thread-safety: pure functions.

#ifndef CONVERGE_ENGINE_CONVERGENCE_MODEL_H_
#define CONVERGE_ENGINE_CONVERGENCE_MODEL_H_

#include <cstdint>
#include <optional>

namespace converge {

// The stop phase of a migration: what it has to send and what it costs
// beyond sending.
struct StopPhase {
  double dirty_rate_bps = 0;  // guest + device dirtying before the stop
  double exposure_s = 0;      // how long that dirtying still adds pages
  double bandwidth_bps = 0;   // effective send rate
  double fixed_ms = 0;        // final sync, device stop, drain, apply
};

// Predicted downtime for `pending_bytes` left at switchover:
// (pending + dirty_rate * exposure) / bandwidth + fixed.
// REQUIRES: phase.bandwidth_bps > 0.
double PredictDowntimeMs(double pending_bytes, const StopPhase& phase);

// The largest pending size whose predicted downtime is within limit_ms:
// (limit - fixed) * bandwidth - dirty_rate * exposure. Negative when even
// nothing pending misses the limit.
double BudgetBytes(double limit_ms, const StopPhase& phase);

// The geometric model: each iteration sends what is pending and, meanwhile,
// the guest dirties lambda times as much; what cannot shrink (the
// writable working set, device state) stays:
//   P_n = floor + (P_0 - floor) * lambda^n.
struct Forecast {
  std::optional<uint64_t> iterations;  // until P_n <= budget; nullopt: never
  std::optional<double> time_ms;       // sum of P_i / bandwidth over them
};
// REQUIRES: bandwidth_bps > 0; lambda >= 0.
Forecast ForecastIterations(double pending_bytes, double floor_bytes,
                            double budget_bytes, double lambda,
                            double bandwidth_bps);

// The vCPU throttle that would reach a limit, under the model that
// throttling by p scales the guest's dirty rate (and the part of the
// working-set floor it rewrites each iteration) by (1 - p). Device and
// perpetually-dirty parts do not scale.
struct ThrottleInputs {
  double limit_ms = 0;
  StopPhase phase;                // unthrottled
  double guest_rate_bps = 0;      // the throttleable share of the rate
  double fixed_floor_bytes = 0;   // floor that throttling cannot shrink
  double guest_floor_bytes = 0;   // floor the guest's rewriting keeps
  double max_lambda = 0.9;        // throttled rate / bandwidth must stay <=
  double max_throttle = 0.99;     // the largest throttle that may be asked
};
// Returns p in [0, max_throttle], or nullopt when no throttle reaches the
// limit (the unthrottleable part alone misses it).
std::optional<double> ThrottleForLimit(const ThrottleInputs& in);

}  // namespace converge

#endif  // CONVERGE_ENGINE_CONVERGENCE_MODEL_H_
