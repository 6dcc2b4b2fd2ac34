// Estimator::Judge: the verdict, forecast, stall cause and throttle
// suggestion, from the model built at the last sync.

#include <algorithm>
#include <cmath>

#include "engine/estimator.h"

namespace converge {

void Estimator::Judge(Estimate& e, const Model& m) const {
  const double limit = options_.downtime_limit_ms;
  const uint32_t k = options_.stall_syncs;
  const bool ack_needed =
      options_.switchover_ack_required && !e.switchover_ack_satisfied;
  if (e.predicted_downtime_ms <= limit && !ack_needed) {
    e.verdict = Verdict::kReady;
    e.iterations_to_go = 0;
    e.time_to_go_ms = 0;
    return;
  }
  const Device* stuck = nullptr;
  for (const Device& d : devices_) {
    if (DeviceNotDraining(d) &&
        (!stuck || d.last.initial_bytes > stuck->last.initial_bytes)) {
      stuck = &d;
    }
  }
  const bool never = never_streak_ >= k;
  const bool unreachable = unreachable_streak_ >= k;
  const bool stalled = unreachable || no_progress_streak_ >= k ||
                       (options_.switchover_ack_required && stuck);
  const double pending = static_cast<double>(pending_bytes_);

  if (!never && !stalled) {
    e.verdict = Verdict::kConverging;
    Forecast f = ForecastIterations(pending, m.floor, m.budget, m.lambda,
                                    m.phase.bandwidth_bps);
    e.iterations_to_go = f.iterations;
    e.time_to_go_ms = f.time_ms;
    if (ack_needed && f.iterations && *f.iterations == 0) {
      // Only the devices' initial data is left to send before the ack.
      double initial = 0;
      for (const Device& d : devices_) {
        initial += static_cast<double>(d.last.initial_bytes);
      }
      e.iterations_to_go = 1;
      e.time_to_go_ms = initial / m.phase.bandwidth_bps * 1000.0;
    }
    return;
  }

  e.verdict = never ? Verdict::kNeverConverges : Verdict::kStalled;
  double reachable = m.floor;
  if (!unreachable) {
    double lowest = *std::min_element(recent_pending_.begin(),
                                      recent_pending_.end());
    reachable = std::max(reachable, lowest);
  }
  e.smallest_reachable_limit_ms = PredictDowntimeMs(reachable, m.phase);

  const Source* perpetual = nullptr;
  const Source* fastest = nullptr;
  for (const Source& s : sources_) {
    if (SourcePerpetuallyDirty(s) &&
        (!perpetual || s.tracked_pages > perpetual->tracked_pages)) {
      perpetual = &s;
    }
    if (!fastest || s.rate_bps.value() > fastest->rate_bps.value()) {
      fastest = &s;
    }
  }
  const Device* largest = nullptr;
  for (const Device& d : devices_) {
    if (!largest || d.last.stop_copy_bytes + d.last.dirty_bytes >
                        largest->last.stop_copy_bytes +
                            largest->last.dirty_bytes) {
      largest = &d;
    }
  }
  if (perpetual) {
    e.cause = StallCause::kPerpetuallyDirtySource;
    e.cause_name = perpetual->name;
  } else if (stuck) {
    e.cause = StallCause::kDeviceNotDraining;
    e.cause_name = stuck->name;
  } else if (m.phase.fixed_ms >= limit) {
    e.cause = StallCause::kFixedCosts;
  } else if (largest && PredictDowntimeMs(m.device_floor, m.phase) > limit) {
    e.cause = StallCause::kDeviceStateSize;
    e.cause_name = largest->name;
  } else {
    e.cause = StallCause::kGuestDirtyRate;
    if (fastest) e.cause_name = fastest->name;
  }

  if (options_.switchover_ack_required && stuck) return;  // no throttle helps
  ThrottleInputs in;
  in.limit_ms = limit;
  in.phase = m.phase;
  in.guest_rate_bps = m.guest_rate;
  in.guest_floor_bytes = m.guest_floor;
  in.fixed_floor_bytes = m.floor - m.guest_floor;
  in.max_lambda = options_.throttle_max_lambda;
  in.max_throttle = options_.max_throttle;
  std::optional<double> p = ThrottleForLimit(in);
  if (p) e.throttle_percent = std::ceil(*p * 100.0 - 1e-9);
}

}  // namespace converge
