#include "engine/estimator.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <utility>

#include "base/saturating.h"

namespace converge {
namespace {

constexpr double kNsPerS = 1e9;
constexpr double kNsPerMs = 1e6;

}  // namespace

std::string_view FixedCostName(FixedCost cost) {
  switch (cost) {
    case FixedCost::kFinalSync: return "final sync";
    case FixedCost::kDeviceStop: return "device stop";
    case FixedCost::kDrainLatency: return "drain latency";
    case FixedCost::kDestinationApply: return "destination apply";
  }
  return "invalid";
}

Estimator::Estimator(const Options& options)
    : options_(options),
      bandwidth_(options.bandwidth_window_ns, options.smoothing_weight),
      dirty_rate_bps_(options.smoothing_weight),
      sync_ns_(options.smoothing_weight),
      fixed_ns_(kNumFixedCosts, Ewma(options.smoothing_weight)) {
  assert(Validate(options).ok());
}

Status Estimator::Validate(const Options& o) {
  if (!(o.downtime_limit_ms > 0)) {
    return InvalidArgumentError("estimator: downtime_limit_ms must be > 0");
  }
  if (o.bandwidth_cap_bps < 0) {
    return InvalidArgumentError("estimator: bandwidth_cap_bps must be >= 0");
  }
  if (o.bandwidth_window_ns == 0) {
    return InvalidArgumentError("estimator: bandwidth_window_ns must be > 0");
  }
  if (!(o.smoothing_weight > 0 && o.smoothing_weight <= 1)) {
    return InvalidArgumentError(
        "estimator: smoothing_weight must be in (0, 1]");
  }
  if (o.stall_syncs == 0) {
    return InvalidArgumentError("estimator: stall_syncs must be >= 1");
  }
  if (!(o.min_progress >= 0 && o.min_progress < 1)) {
    return InvalidArgumentError("estimator: min_progress must be in [0, 1)");
  }
  if (!(o.throttle_max_lambda > 0 && o.throttle_max_lambda < 1)) {
    return InvalidArgumentError(
        "estimator: throttle_max_lambda must be in (0, 1)");
  }
  if (!(o.max_throttle >= 0 && o.max_throttle < 1)) {
    return InvalidArgumentError("estimator: max_throttle must be in [0, 1)");
  }
  return OkStatus();
}

size_t Estimator::AddSource(std::string name, uint64_t tracked_pages,
                            bool guest) {
  assert(syncs_ == 0 && "sources are registered before the first sync");
  sources_.push_back(Source{std::move(name), tracked_pages, guest,
                            Ewma(options_.smoothing_weight)});
  return sources_.size() - 1;
}

size_t Estimator::AddDevice(std::string name) {
  assert(syncs_ == 0 && "devices are registered before the first sync");
  devices_.push_back(Device{std::move(name), DeviceSample{}, {}});
  return devices_.size() - 1;
}

Status Estimator::RecordSync(const SyncSample& s) {
  if (s.source_pages.size() != sources_.size()) {
    return InvalidArgumentError(
        "sync sample has " + std::to_string(s.source_pages.size()) +
        " source counts for " + std::to_string(sources_.size()) +
        " registered sources");
  }
  if (s.devices.size() != devices_.size()) {
    return InvalidArgumentError(
        "sync sample has " + std::to_string(s.devices.size()) +
        " device samples for " + std::to_string(devices_.size()) +
        " registered devices");
  }
  if (s.page_size_bytes == 0) {
    return InvalidArgumentError("sync sample page_size_bytes is 0");
  }
  if (syncs_ > 0 && s.now_ns <= last_now_ns_) {
    return InvalidArgumentError(
        "sync clock did not advance: now_ns " + std::to_string(s.now_ns) +
        " after " + std::to_string(last_now_ns_));
  }
  for (size_t i = 0; i < sources_.size(); ++i) {
    if (s.source_pages[i] > sources_[i].tracked_pages) {
      return InvalidArgumentError(
          "source " + sources_[i].name + " reported " +
          std::to_string(s.source_pages[i]) + " pages but tracks " +
          std::to_string(sources_[i].tracked_pages));
    }
  }

  // The first sync reports everything dirtied since tracking started (all
  // of RAM, with KVM's initially-set log): a baseline, not a rate.
  const bool have_interval = syncs_ > 0;
  const double interval_s =
      have_interval ? static_cast<double>(s.now_ns - last_now_ns_) / kNsPerS
                    : 0;
  const double page = static_cast<double>(s.page_size_bytes);
  if (have_interval) {
    dirty_rate_bps_.Add(static_cast<double>(s.dirtied_pages) * page /
                        interval_s);
  }
  for (size_t i = 0; i < sources_.size(); ++i) {
    Source& src = sources_[i];
    src.last_pages = s.source_pages[i];
    if (!have_interval) continue;
    src.rate_bps.Add(static_cast<double>(src.last_pages) * page / interval_s);
    bool all = src.tracked_pages > 0 && src.last_pages == src.tracked_pages;
    src.all_dirty_streak = all ? src.all_dirty_streak + 1 : 0;
  }
  for (size_t i = 0; i < devices_.size(); ++i) {
    Device& d = devices_[i];
    d.last = s.devices[i];
    d.initial_history.push_back(d.last.initial_bytes);
    if (d.initial_history.size() > options_.stall_syncs + 1) {
      d.initial_history.pop_front();
    }
  }
  sync_ns_.Add(static_cast<double>(s.sync_ns));

  page_size_bytes_ = s.page_size_bytes;
  ram_pending_pages_ = s.ram_pending_pages;
  wws_pages_ = s.wws_pages;
  previous_pending_bytes_ = pending_bytes_;
  // Saturating: a device may report any 64-bit size, and a wrapped sum
  // would read as "almost nothing pending".
  device_pending_bytes_ = 0;
  for (const Device& d : devices_) {
    device_pending_bytes_ = SaturatingAdd(
        device_pending_bytes_,
        SaturatingAdd(d.last.initial_bytes,
                      SaturatingAdd(d.last.dirty_bytes,
                                    d.last.stop_copy_bytes)));
  }
  pending_bytes_ =
      SaturatingAdd(SaturatingMul(ram_pending_pages_, page_size_bytes_),
                    device_pending_bytes_);
  ++syncs_;
  last_now_ns_ = s.now_ns;

  uint64_t pending_k_ago =
      recent_pending_.size() == options_.stall_syncs ? recent_pending_.front()
                                                     : 0;
  recent_pending_.push_back(pending_bytes_);
  if (recent_pending_.size() > options_.stall_syncs) {
    recent_pending_.pop_front();
  }

  Model m = BuildModel();
  if (!m.valid) return OkStatus();
  never_streak_ = m.lambda >= 1 ? never_streak_ + 1 : 0;
  unreachable_streak_ = m.budget <= m.floor ? unreachable_streak_ + 1 : 0;
  bool progress =
      pending_k_ago == 0 ||
      static_cast<double>(pending_bytes_) <
          (1 - options_.min_progress) * static_cast<double>(pending_k_ago);
  no_progress_streak_ = progress ? 0 : no_progress_streak_ + 1;
  return OkStatus();
}

void Estimator::RecordSent(uint64_t bytes, uint64_t elapsed_ns) {
  bandwidth_.Add(bytes, elapsed_ns);
}

void Estimator::RecordFixedCost(FixedCost cost, uint64_t ns) {
  fixed_ns_[static_cast<size_t>(cost)].Add(static_cast<double>(ns));
}

double Estimator::BandwidthBps() const {
  double bw = bandwidth_.bytes_per_second();
  if (options_.bandwidth_cap_bps > 0) {
    bw = std::min(bw, options_.bandwidth_cap_bps);
  }
  return bw;
}

bool Estimator::DeviceNotDraining(const Device& d) const {
  if (d.initial_history.size() <= options_.stall_syncs) return false;
  return d.last.initial_bytes > 0 &&
         d.last.initial_bytes >= d.initial_history.front();
}

bool Estimator::SourcePerpetuallyDirty(const Source& s) const {
  return s.all_dirty_streak >= options_.stall_syncs;
}

Estimator::Model Estimator::BuildModel() const {
  Model m;
  const double n_devices = static_cast<double>(devices_.size());
  auto cost_ns = [&](FixedCost c, double prior_ns) {
    const Ewma& e = fixed_ns_[static_cast<size_t>(c)];
    return e.has_value() ? e.value() : prior_ns;
  };
  const Ewma& final_sync = fixed_ns_[static_cast<size_t>(FixedCost::kFinalSync)];
  double final_sync_ns =
      final_sync.has_value()
          ? final_sync.value()
          : (sync_ns_.has_value()
                 ? sync_ns_.value()
                 : static_cast<double>(options_.prior_final_sync_ns));
  double fixed_ns =
      final_sync_ns +
      cost_ns(FixedCost::kDeviceStop,
              n_devices * static_cast<double>(
                              options_.prior_device_stop_ns_per_device)) +
      cost_ns(FixedCost::kDrainLatency,
              n_devices * static_cast<double>(
                              options_.prior_drain_latency_ns_per_device)) +
      cost_ns(FixedCost::kDestinationApply,
              static_cast<double>(options_.prior_destination_apply_ns));
  m.fixed_measured =
      (final_sync.has_value() || sync_ns_.has_value()) &&
      fixed_ns_[static_cast<size_t>(FixedCost::kDestinationApply)]
          .has_value() &&
      (devices_.empty() ||
       (fixed_ns_[static_cast<size_t>(FixedCost::kDeviceStop)].has_value() &&
        fixed_ns_[static_cast<size_t>(FixedCost::kDrainLatency)]
            .has_value()));

  m.phase.dirty_rate_bps = dirty_rate_bps_.value();
  m.phase.exposure_s = final_sync_ns / kNsPerS;
  m.phase.bandwidth_bps = BandwidthBps();
  m.phase.fixed_ms = fixed_ns / kNsPerMs;

  // Floors: RAM rewritten every sync, sources that report everything, and
  // device state that pre-copy cannot remove.
  const double page = static_cast<double>(page_size_bytes_);
  double perpetual_bytes = 0;
  double guest_rate = 0;
  for (const Source& s : sources_) {
    if (SourcePerpetuallyDirty(s)) {
      perpetual_bytes += static_cast<double>(s.tracked_pages) * page;
    } else if (s.guest) {
      guest_rate += s.rate_bps.value();
    }
  }
  m.guest_rate = std::min(guest_rate, m.phase.dirty_rate_bps);
  m.wws_bytes = static_cast<double>(wws_pages_) * page;
  m.ram_floor = std::max(m.wws_bytes, perpetual_bytes);
  m.device_floor = 0;
  for (const Device& d : devices_) {
    m.device_floor += static_cast<double>(d.last.dirty_bytes) +
                      static_cast<double>(d.last.stop_copy_bytes);
    if (DeviceNotDraining(d)) {
      m.device_floor += static_cast<double>(d.last.initial_bytes);
    }
  }
  m.floor = m.ram_floor + m.device_floor;
  double guest_share = m.phase.dirty_rate_bps > 0
                           ? m.guest_rate / m.phase.dirty_rate_bps
                           : 0;
  m.guest_floor = (m.ram_floor - perpetual_bytes) * guest_share;

  m.valid = syncs_ >= 2 && bandwidth_.measured() && m.phase.bandwidth_bps > 0;
  if (!m.valid) return m;
  m.lambda = m.phase.dirty_rate_bps / m.phase.bandwidth_bps;
  m.budget = BudgetBytes(options_.downtime_limit_ms, m.phase);
  return m;
}

Estimate Estimator::Current() const {
  const Model m = BuildModel();
  Estimate e;
  e.syncs = syncs_;
  e.ram_pending_bytes = SaturatingMul(ram_pending_pages_, page_size_bytes_);
  e.device_pending_bytes = device_pending_bytes_;
  e.pending_bytes = pending_bytes_;
  e.bandwidth_measured = bandwidth_.measured();
  e.bandwidth_bps = m.phase.bandwidth_bps;
  e.dirty_rate_bps = m.phase.dirty_rate_bps;
  for (const Source& s : sources_) {
    e.sources.push_back(SourceEstimate{s.name, s.rate_bps.value(),
                                       s.last_pages,
                                       SourcePerpetuallyDirty(s)});
  }
  e.switchover_ack_satisfied = true;
  for (const Device& d : devices_) {
    e.devices.push_back(DeviceEstimate{d.name, d.last.initial_bytes,
                                       d.last.dirty_bytes,
                                       d.last.stop_copy_bytes,
                                       !DeviceNotDraining(d)});
    if (d.last.initial_bytes > 0) e.switchover_ack_satisfied = false;
  }
  e.fixed_costs_ms = m.phase.fixed_ms;
  e.fixed_costs_measured = m.fixed_measured;
  e.dirtied_during_stop_bytes = m.phase.dirty_rate_bps * m.phase.exposure_s;
  e.wws_floor_bytes = ClampToU64(m.wws_bytes);
  e.floor_bytes = ClampToU64(m.floor);
  if (previous_pending_bytes_ > 0) {
    e.pending_ratio = static_cast<double>(pending_bytes_) /
                      static_cast<double>(previous_pending_bytes_);
  }
  if (!m.valid) {
    e.verdict = Verdict::kMeasuring;
    return e;
  }
  e.lambda = m.lambda;
  e.predicted_downtime_ms =
      PredictDowntimeMs(static_cast<double>(pending_bytes_), m.phase);
  e.qemu_expected_downtime_ms = static_cast<double>(e.ram_pending_bytes) /
                                m.phase.bandwidth_bps * 1000.0;
  Judge(e, m);
  return e;
}

}  // namespace converge
