#include "engine/convergence_model.h"

#include <algorithm>
#include <cassert>
#include <cmath>

#include "base/saturating.h"

namespace converge {

double PredictDowntimeMs(double pending_bytes, const StopPhase& phase) {
  assert(phase.bandwidth_bps > 0);
  double bytes = pending_bytes + phase.dirty_rate_bps * phase.exposure_s;
  return bytes / phase.bandwidth_bps * 1000.0 + phase.fixed_ms;
}

double BudgetBytes(double limit_ms, const StopPhase& phase) {
  return (limit_ms - phase.fixed_ms) / 1000.0 * phase.bandwidth_bps -
         phase.dirty_rate_bps * phase.exposure_s;
}

Forecast ForecastIterations(double pending_bytes, double floor_bytes,
                            double budget_bytes, double lambda,
                            double bandwidth_bps) {
  assert(bandwidth_bps > 0 && lambda >= 0);
  Forecast f;
  if (pending_bytes <= budget_bytes) {
    f.iterations = 0;
    f.time_ms = 0;
    return f;
  }
  if (budget_bytes <= floor_bytes || lambda >= 1) return f;
  double shrinking = pending_bytes - floor_bytes;
  double n = 1;
  if (lambda > 0) {
    // The epsilon keeps an exact power (budget = P * lambda^3) at 3
    // instead of rounding error making it 4.
    n = std::ceil(std::log((budget_bytes - floor_bytes) / shrinking) /
                      std::log(lambda) -
                  1e-9);
    n = std::max(n, 1.0);
  }
  // sum_{i<n} P_i = n * floor + shrinking * (1 - lambda^n) / (1 - lambda)
  double sent = n * floor_bytes +
                shrinking * (1 - std::pow(lambda, n)) / (1 - lambda);
  f.iterations = ClampToU64(n);
  f.time_ms = sent / bandwidth_bps * 1000.0;
  return f;
}

std::optional<double> ThrottleForLimit(const ThrottleInputs& in) {
  const StopPhase& ph = in.phase;
  double guest_rate = std::clamp(in.guest_rate_bps, 0.0, ph.dirty_rate_bps);
  double other_rate = ph.dirty_rate_bps - guest_rate;
  // Bytes the stop may carry, less what no throttle removes.
  double room = (in.limit_ms - ph.fixed_ms) / 1000.0 * ph.bandwidth_bps -
                in.fixed_floor_bytes - other_rate * ph.exposure_s;
  if (room <= 0) return std::nullopt;
  double scalable = in.guest_floor_bytes + guest_rate * ph.exposure_s;
  double p = 0;
  if (scalable > room) p = 1 - room / scalable;
  // The throttled rate must also let pre-copy converge.
  double rate_room = in.max_lambda * ph.bandwidth_bps - other_rate;
  if (rate_room <= 0) return std::nullopt;
  if (guest_rate > rate_room) p = std::max(p, 1 - rate_room / guest_rate);
  if (p > in.max_throttle) return std::nullopt;
  return p;
}

}  // namespace converge
