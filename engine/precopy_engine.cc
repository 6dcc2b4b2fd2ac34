#include "engine/precopy_engine.h"

#include <algorithm>
#include <cassert>
#include <limits>
#include <optional>
#include <utility>

#include "engine/precopy_engine_rep.h"

namespace converge {
namespace {

constexpr uint64_t kNoLimit = std::numeric_limits<uint64_t>::max();
// A device's data_fd may hold less than PRECOPY_INFO reports (a driver
// that streams through a bounded buffer refills it only as it is read), so
// an iteration asks again and keeps reading. Rounds that read nothing wait
// kRefillWaitNs for the refill; after kMaxEmptyRounds of them the device is
// left for the next iteration.
constexpr uint64_t kRefillWaitNs = 200'000;
constexpr unsigned kMaxEmptyRounds = 8;

Status WrongPhase(std::string_view call, EnginePhase phase) {
  return FailedPreconditionError("PrecopyEngine::" + std::string(call) +
                                 " in phase " +
                                 std::string(EnginePhaseName(phase)));
}

Status ValidateOptions(const EngineOptions& o) {
  CONVERGE_RETURN_IF_ERROR(MigrationPolicy::Validate(o.policy));
  MigrationPolicy policy(o.policy);
  CONVERGE_RETURN_IF_ERROR(
      Estimator::Validate(policy.EstimatorOptions(o.estimator)));
  if (o.page_bytes < 4096 || (o.page_bytes & (o.page_bytes - 1)) != 0) {
    return InvalidArgumentError(
        "EngineOptions.page_bytes must be a power of two >= 4096, got " +
        std::to_string(o.page_bytes));
  }
  if (o.harvest_chunk_pages == 0) {
    return InvalidArgumentError("EngineOptions.harvest_chunk_pages is 0");
  }
  if (o.wws_syncs == 0) {
    return InvalidArgumentError("EngineOptions.wws_syncs is 0");
  }
  if (o.ram.pages_per_record == 0 || o.ram.max_records_in_flight == 0) {
    return InvalidArgumentError(
        "EngineOptions.ram: pages_per_record and max_records_in_flight "
        "must be > 0");
  }
  if (o.drain.chunk_bytes == 0 || o.drain.chunk_bytes > kMaxChunkBytes ||
      o.drain.buffers_per_device == 0) {
    return InvalidArgumentError(
        "EngineOptions.drain: chunk_bytes must be in [1, " +
        std::to_string(kMaxChunkBytes) + "] and buffers_per_device > 0");
  }
  return OkStatus();
}

}  // namespace

std::string_view EnginePhaseName(EnginePhase phase) {
  switch (phase) {
    case EnginePhase::kConfiguring: return "configuring";
    case EnginePhase::kPrecopy: return "precopy";
    case EnginePhase::kSwitchover: return "switchover";
    case EnginePhase::kCompleted: return "completed";
    case EnginePhase::kCancelled: return "cancelled";
    case EnginePhase::kFailed: return "failed";
  }
  return "invalid";
}

PrecopyEngine::Rep::Rep(Kernel& k, Clock& c, Transport& t, EngineOptions o)
    : kernel(k),
      clock(c),
      transport(t),
      options(std::move(o)),
      policy(options.policy),
      estimator(policy.EstimatorOptions(options.estimator)) {}

std::vector<DeviceSession*> PrecopyEngine::Rep::Sessions() const {
  std::vector<DeviceSession*> out;
  for (const auto& d : devices) out.push_back(d.get());
  return out;
}

Result<bool> PrecopyEngine::Rep::DrainDevices(DeviceDrain& drain,
                                              uint64_t max_bytes,
                                              uint64_t deadline_ns,
                                              uint64_t& device_bytes) {
  const uint64_t start_bytes = transport.bytes_written();
  for (;;) {
    if (transport.bytes_written() - start_bytes >= max_bytes ||
        clock.NowNs() >= deadline_ns) {
      return true;
    }
    CONVERGE_ASSIGN_OR_RETURN(std::optional<DrainChunk> chunk, drain.Next());
    if (!chunk) return false;
    Status s = writer->WriteDeviceChunk(chunk->device_id, chunk->bytes);
    device_bytes += chunk->bytes.size();
    drain.Release(*chunk);
    CONVERGE_RETURN_IF_ERROR(s);
  }
}

Status PrecopyEngine::Rep::Rollback() {
  Status first;
  precopy_drain.reset();  // waits for its reads before the fds close
  if (ram) first = ram->Stop();
  std::vector<DeviceSession*> sessions = Sessions();
  Status back = ReturnDevicesToRunning(sessions);
  if (first.ok()) first = back;
  return first;
}

Result<std::unique_ptr<PrecopyEngine>> PrecopyEngine::Create(
    Kernel& kernel, Clock& clock, Transport& transport,
    EngineOptions options) {
  CONVERGE_RETURN_IF_ERROR(ValidateOptions(options));
  return std::unique_ptr<PrecopyEngine>(new PrecopyEngine(
      std::make_unique<Rep>(kernel, clock, transport, std::move(options))));
}

PrecopyEngine::PrecopyEngine(std::unique_ptr<Rep> rep) : rep_(std::move(rep)) {}

PrecopyEngine::~PrecopyEngine() {
  if (rep_->phase == EnginePhase::kPrecopy ||
      rep_->phase == EnginePhase::kSwitchover) {
    (void)Cancel();
  }
}

Status PrecopyEngine::AddRegion(const GuestRegion& region) {
  Rep& r = *rep_;
  if (r.phase != EnginePhase::kConfiguring) {
    return WrongPhase("AddRegion", r.phase);
  }
  const uint64_t page = r.options.page_bytes;
  if (region.size_bytes == 0 || region.gpa % page != 0 ||
      region.size_bytes % page != 0) {
    return InvalidArgumentError(
        "region at GPA " + std::to_string(region.gpa) + " of " +
        std::to_string(region.size_bytes) +
        " bytes must be non-empty and aligned to the page size " +
        std::to_string(page));
  }
  if (region.host == nullptr && r.options.ram_channel == nullptr) {
    return InvalidArgumentError(
        "region at GPA " + std::to_string(region.gpa) +
        " has no host mapping (only a custom RamChannel can do without)");
  }
  for (const GuestRegion& g : r.regions) {
    if (region.gpa < g.gpa + g.size_bytes &&
        g.gpa < region.gpa + region.size_bytes) {
      return InvalidArgumentError("region at GPA " +
                                  std::to_string(region.gpa) +
                                  " overlaps the region at GPA " +
                                  std::to_string(g.gpa));
    }
  }
  r.regions.push_back(region);
  return OkStatus();
}

Status PrecopyEngine::AddSource(DirtySource* source, SourceKind kind) {
  Rep& r = *rep_;
  if (r.phase != EnginePhase::kConfiguring) {
    return WrongPhase("AddSource", r.phase);
  }
  if (source == nullptr) return InvalidArgumentError("AddSource: null source");
  r.sources.push_back({source, kind});
  return OkStatus();
}

Result<uint32_t> PrecopyEngine::AddDevice(std::string name, int device_fd) {
  Rep& r = *rep_;
  if (r.phase != EnginePhase::kConfiguring) {
    return WrongPhase("AddDevice", r.phase);
  }
  if (name.empty() || name.size() > kMaxDeviceNameBytes) {
    return InvalidArgumentError("device name must have 1 to " +
                                std::to_string(kMaxDeviceNameBytes) +
                                " bytes: \"" + name + "\"");
  }
  for (const auto& d : r.devices) {
    if (d->name() == name) {
      return InvalidArgumentError("device \"" + name + "\" added twice");
    }
  }
  if (r.devices.size() >= kMaxDevices) {
    return InvalidArgumentError("more than " + std::to_string(kMaxDevices) +
                                " devices");
  }
  CONVERGE_ASSIGN_OR_RETURN(
      std::unique_ptr<DeviceSession> session,
      DeviceSession::Open(r.kernel, device_fd, name, r.options.device));
  r.devices.push_back(std::move(session));
  return static_cast<uint32_t>(r.devices.size() - 1);
}

Status PrecopyEngine::Start() {
  Rep& r = *rep_;
  if (r.phase != EnginePhase::kConfiguring) return WrongPhase("Start", r.phase);
  if (r.regions.empty()) return InvalidArgumentError("Start: no RAM region");

  StreamLayout layout;
  layout.page_size = static_cast<uint32_t>(r.options.page_bytes);
  uint64_t total_pages = 0;
  for (const GuestRegion& g : r.regions) {
    layout.regions.push_back({g.gpa, g.size_bytes});
    total_pages += g.size_bytes / r.options.page_bytes;
  }
  for (size_t i = 0; i < r.devices.size(); ++i) {
    layout.devices.push_back(
        {static_cast<uint32_t>(i),
         static_cast<uint32_t>(r.devices[i]->capabilities().migration_flags),
         r.devices[i]->name()});
  }
  CONVERGE_RETURN_IF_ERROR(ValidateLayout(layout));
  CONVERGE_ASSIGN_OR_RETURN(
      r.writer, StreamWriter::Create(r.transport, layout, r.options.codec));
  if (r.options.ram_channel != nullptr) {
    r.channel = r.options.ram_channel;
  } else {
    r.own_channel =
        MakeRamSenderChannel(r.clock, r.regions, r.options.ram);
    r.channel = r.own_channel.get();
  }
  CONVERGE_RETURN_IF_ERROR(r.channel->Attach(*r.writer));

  DirtyRam::Options ram_options;
  ram_options.page_bytes = r.options.page_bytes;
  ram_options.harvest_chunk_pages = r.options.harvest_chunk_pages;
  const uint64_t chunk_pages = r.options.rearm_chunk_bytes / r.options.page_bytes;
  ram_options.rearm_chunk_pages = (chunk_pages + 63) / 64 * 64;
  ram_options.wws_syncs = r.options.wws_syncs;
  r.ram = std::make_unique<DirtyRam>(r.regions, ram_options);
  for (const Rep::Source& s : r.sources) {
    r.ram->AddSource(s.source);
    r.estimator.AddSource(std::string(s.source->name()), total_pages,
                          s.kind == SourceKind::kVcpu);
  }
  for (const auto& d : r.devices) r.estimator.AddDevice(d->name());

  r.start_ns = r.clock.NowNs();
  auto fail = [&](const Status& error) {
    (void)r.Rollback();
    r.phase = EnginePhase::kCancelled;
    return error;
  };
  Status st = r.ram->Start();
  if (!st.ok()) return fail(st);
  std::vector<DrainDevice> precopy;
  for (size_t i = 0; i < r.devices.size(); ++i) {
    DeviceSession& d = *r.devices[i];
    if (!r.options.device_precopy || !d.capabilities().pre_copy) continue;
    st = d.Transition(MigState::kPreCopy);
    if (!st.ok()) return fail(st);
    precopy.push_back({static_cast<uint32_t>(i), d.data_fd(), d.name()});
  }
  if (!precopy.empty()) {
    Result<std::unique_ptr<DeviceDrain>> drain =
        DeviceDrain::Create(precopy, DataPhase::kPreCopy, r.options.drain);
    if (!drain.ok()) return fail(drain.status());
    r.precopy_drain = std::move(*drain);
  }
  r.phase = EnginePhase::kPrecopy;
  return OkStatus();
}

Result<SyncStats> PrecopyEngine::Sync() {
  Rep& r = *rep_;
  if (r.phase != EnginePhase::kPrecopy) return WrongPhase("Sync", r.phase);
  const uint64_t t0 = r.clock.NowNs();
  DirtyRam::SyncResult harvest = r.ram->Sync();
  SyncSample sample;
  sample.page_size_bytes = r.options.page_bytes;
  sample.ram_pending_pages = harvest.pending_pages;
  sample.dirtied_pages = harvest.dirtied_pages;
  sample.wws_pages = harvest.wws_pages;
  sample.source_pages = harvest.source_pages;
  SyncStats out;
  for (const auto& d : r.devices) {
    DeviceSample ds;
    if (d->data_fd() >= 0 && d->capabilities().pre_copy) {
      CONVERGE_ASSIGN_OR_RETURN(DevicePrecopyInfo info, d->QueryPrecopyInfo());
      ds.initial_bytes = info.initial_bytes;
      ds.dirty_bytes = info.dirty_bytes;
    }
    if (d->capabilities().mig_data_size) {
      // MIG_DATA_SIZE is everything STOP_COPY would still read, unread
      // pre-copy data included; the estimator counts that part as initial
      // and dirty already.
      CONVERGE_ASSIGN_OR_RETURN(uint64_t total, d->QueryStopCopyBytes());
      const uint64_t precopy = ds.initial_bytes + ds.dirty_bytes;
      ds.stop_copy_bytes = total > precopy ? total - precopy : 0;
    }
    out.device_pending_bytes +=
        ds.initial_bytes + ds.dirty_bytes + ds.stop_copy_bytes;
    sample.devices.push_back(ds);
  }
  // PRECOPY_INFO published more data: read the idle devices again.
  if (r.precopy_drain) r.precopy_drain->Rearm();
  const uint64_t t1 = r.clock.NowNs();
  // The estimator needs the clock to advance between syncs.
  sample.now_ns = std::max(t1, r.last_sync_ns + 1);
  sample.sync_ns = t1 - t0;
  CONVERGE_RETURN_IF_ERROR(r.estimator.RecordSync(sample));
  r.last_sync_ns = sample.now_ns;
  r.last_sync_duration_ns = sample.sync_ns;
  r.last_dirtied_pages = harvest.dirtied_pages;
  out.now_ns = t1;
  out.sync_ns = t1 - t0;
  out.dirtied_pages = harvest.dirtied_pages;
  out.ram_pending_pages = harvest.pending_pages;
  out.wws_pages = harvest.wws_pages;
  out.source_error = harvest.source_error;
  return out;
}

Estimate PrecopyEngine::CurrentEstimate() const {
  return rep_->estimator.Current();
}

Result<IterationStats> PrecopyEngine::Iterate() {
  Rep& r = *rep_;
  if (r.phase != EnginePhase::kPrecopy) return WrongPhase("Iterate", r.phase);
  const PolicyOptions& p = r.options.policy;
  IterationStats st;
  st.iteration = r.iterations + 1;
  st.start_ns = r.clock.NowNs();
  st.ram_dirtied_pages = r.last_dirtied_pages;
  const uint64_t max_bytes =
      p.iteration_budget_bytes ? p.iteration_budget_bytes : kNoLimit;
  const uint64_t deadline_ns =
      p.iteration_budget_ms ? st.start_ns + p.iteration_budget_ms * 1'000'000
                            : kNoLimit;
  const uint64_t bytes0 = r.transport.bytes_written();
  if (r.precopy_drain) {
    // Reads until the bytes pending when the iteration began are sent, the
    // budget ends, or the devices stop producing.
    std::optional<uint64_t> target_bytes;
    for (unsigned empty_rounds = 0;;) {
      const uint64_t before = st.device_bytes;
      CONVERGE_ASSIGN_OR_RETURN(
          st.budget_exhausted,
          r.DrainDevices(*r.precopy_drain, max_bytes, deadline_ns,
                         st.device_bytes));
      if (st.budget_exhausted) break;
      if (target_bytes && st.device_bytes >= *target_bytes) break;
      empty_rounds = st.device_bytes == before ? empty_rounds + 1 : 0;
      if (empty_rounds > kMaxEmptyRounds) break;
      CONVERGE_ASSIGN_OR_RETURN(std::vector<PrecopyInfo> infos,
                                r.precopy_drain->RefreshPrecopyInfo(r.kernel));
      uint64_t pending = 0;
      for (const PrecopyInfo& info : infos) {
        pending += info.initial_bytes + info.dirty_bytes;
      }
      if (pending == 0) break;
      if (!target_bytes) target_bytes = st.device_bytes + pending;
      if (empty_rounds > 0) r.clock.SleepNs(kRefillWaitNs);
    }
  }
  st.device_wire_bytes = r.transport.bytes_written() - bytes0;
  if (!st.budget_exhausted) {
    RamChannelBudget budget;
    budget.max_bytes = max_bytes == kNoLimit
                           ? kNoLimit
                           : max_bytes - std::min(max_bytes,
                                                  st.device_wire_bytes);
    budget.deadline_ns = deadline_ns;
    CONVERGE_ASSIGN_OR_RETURN(RamChannelStats ram,
                              r.ram->Send(*r.channel, budget, true));
    st.ram_pages_sent = ram.pages;
    st.ram_zero_pages = ram.zero_pages;
    st.ram_wire_bytes = ram.wire_bytes;
    st.budget_exhausted = !ram.complete;
  }
  ++r.iterations;
  CONVERGE_RETURN_IF_ERROR(
      r.writer->WriteIterationMark(r.iterations, r.clock.NowNs()));
  // Bytes still queued in the transport are not on the wire: waiting for
  // them makes the bandwidth sample honest, and nothing of this iteration
  // is left to delay a switchover.
  CONVERGE_RETURN_IF_ERROR(r.transport.Flush());
  const uint64_t end_ns = r.clock.NowNs();
  st.duration_ns = end_ns - st.start_ns;
  st.stream_bytes = r.transport.bytes_written() - bytes0;
  st.ram_pending_pages = r.ram->pending_pages();
  r.total_ram_pages += st.ram_pages_sent;
  r.total_device_bytes += st.device_bytes;
  const uint64_t raw = st.ram_pages_sent * r.options.page_bytes +
                       st.device_bytes;
  if (raw > 0) r.estimator.RecordSent(raw, std::max<uint64_t>(st.duration_ns, 1));
  // Pace to the bandwidth cap: an iteration that went faster waits.
  if (p.bandwidth_cap_bps > 0) {
    const double min_ns =
        static_cast<double>(st.stream_bytes) / p.bandwidth_cap_bps * 1e9;
    if (min_ns > static_cast<double>(st.duration_ns)) {
      r.clock.SleepNs(static_cast<uint64_t>(min_ns) - st.duration_ns);
    }
  }
  const Estimate e = r.estimator.Current();
  st.verdict = e.verdict;
  st.predicted_downtime_ms = e.predicted_downtime_ms;
  st.qemu_expected_downtime_ms = e.qemu_expected_downtime_ms;
  st.pending_bytes = e.pending_bytes;
  st.bandwidth_bps = e.bandwidth_bps;
  st.dirty_rate_bps = e.dirty_rate_bps;
  st.lambda = e.lambda;
  st.sync_ns = r.last_sync_duration_ns;
  if (r.options.progress) r.options.progress(st);
  return st;
}

SwitchoverDecision PrecopyEngine::ShouldSwitchover() {
  Rep& r = *rep_;
  if (r.phase != EnginePhase::kPrecopy) {
    return {Action::kAbort, "the engine is in phase " +
                                std::string(EnginePhaseName(r.phase))};
  }
  MigrationProgress progress;
  progress.iterations = r.iterations;
  progress.elapsed_ms = (r.clock.NowNs() - r.start_ns) / 1'000'000;
  Estimate e = r.estimator.Current();
  SwitchoverDecision d = r.policy.ShouldSwitchover(e, progress);
  r.decided = std::move(e);
  r.decided_reason = d.reason;
  return d;
}

Result<SwitchoverStats> PrecopyEngine::Switchover(
    const SwitchoverHooks& hooks) {
  if (rep_->phase != EnginePhase::kPrecopy) {
    return WrongPhase("Switchover", rep_->phase);
  }
  if (!hooks.pause_vcpus) {
    return InvalidArgumentError("Switchover: no pause_vcpus hook");
  }
  return rep_->Switchover(hooks);
}

void PrecopyEngine::RecordDestinationApply(uint64_t apply_ns) {
  rep_->fixed_ns[static_cast<size_t>(FixedCost::kDestinationApply)] = apply_ns;
  rep_->estimator.RecordFixedCost(FixedCost::kDestinationApply, apply_ns);
}

Status PrecopyEngine::Cancel() {
  Rep& r = *rep_;
  if (r.phase == EnginePhase::kConfiguring) {
    r.phase = EnginePhase::kCancelled;
    return OkStatus();
  }
  Status s = r.Rollback();
  r.phase = EnginePhase::kCancelled;
  return s;
}

EnginePhase PrecopyEngine::phase() const { return rep_->phase; }
uint64_t PrecopyEngine::iterations() const { return rep_->iterations; }
uint64_t PrecopyEngine::measured_fixed_cost_ns(FixedCost cost) const {
  return rep_->fixed_ns[static_cast<size_t>(cost)];
}
const DeviceSession& PrecopyEngine::device(uint32_t id) const {
  assert(id < rep_->devices.size());
  return *rep_->devices[id];
}
size_t PrecopyEngine::num_devices() const { return rep_->devices.size(); }

}  // namespace converge
