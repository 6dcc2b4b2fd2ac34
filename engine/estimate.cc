#include "engine/estimate.h"

#include <cstdio>

namespace converge {

std::string_view VerdictName(Verdict verdict) {
  switch (verdict) {
    case Verdict::kMeasuring: return "measuring";
    case Verdict::kConverging: return "converging";
    case Verdict::kReady: return "ready";
    case Verdict::kStalled: return "stalled";
    case Verdict::kNeverConverges: return "never-converges";
  }
  return "invalid";
}

std::string_view StallCauseName(StallCause cause) {
  switch (cause) {
    case StallCause::kNone: return "none";
    case StallCause::kGuestDirtyRate: return "guest dirty rate";
    case StallCause::kPerpetuallyDirtySource:
      return "perpetually dirty source";
    case StallCause::kDeviceNotDraining: return "device not draining";
    case StallCause::kDeviceStateSize: return "device state size";
    case StallCause::kFixedCosts: return "fixed costs";
  }
  return "invalid";
}

std::string Estimate::Summary() const {
  char buf[512];
  int n = snprintf(
      buf, sizeof buf,
      "%s: predicted %.1f ms (qemu %.1f ms), pending %llu bytes "
      "(ram %llu, devices %llu), bandwidth %.0f B/s, dirty %.0f B/s, "
      "lambda %.3f",
      std::string(VerdictName(verdict)).c_str(), predicted_downtime_ms,
      qemu_expected_downtime_ms,
      static_cast<unsigned long long>(pending_bytes),
      static_cast<unsigned long long>(ram_pending_bytes),
      static_cast<unsigned long long>(device_pending_bytes), bandwidth_bps,
      dirty_rate_bps, lambda);
  std::string out(buf, static_cast<size_t>(n) < sizeof buf
                           ? static_cast<size_t>(n)
                           : sizeof buf - 1);
  if (iterations_to_go && verdict == Verdict::kConverging) {
    out += ", " + std::to_string(*iterations_to_go) + " iterations to go";
  }
  if (verdict == Verdict::kStalled || verdict == Verdict::kNeverConverges) {
    snprintf(buf, sizeof buf, ", cause %s%s%s, smallest reachable %.1f ms",
             std::string(StallCauseName(cause)).c_str(),
             cause_name.empty() ? "" : " ",
             cause_name.c_str(), smallest_reachable_limit_ms);
    out += buf;
    if (throttle_percent) {
      snprintf(buf, sizeof buf, ", throttle %.0f%% would reach the limit",
               *throttle_percent);
      out += buf;
    } else {
      out += ", no throttle reaches the limit";
    }
  }
  return out;
}

}  // namespace converge
