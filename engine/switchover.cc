// PrecopyEngine::Switchover(): the stop-and-copy phase.

#include <algorithm>
#include <limits>
#include <vector>

#include "engine/precopy_engine_rep.h"

namespace converge {
namespace {
constexpr uint64_t kNoLimit = std::numeric_limits<uint64_t>::max();
}  // namespace

Result<SwitchoverStats> PrecopyEngine::Rep::Switchover(
    const SwitchoverHooks& hooks) {
  SwitchoverStats st;
  st.start_ns = clock.NowNs();
  const Estimate at_decision = decided ? *decided : estimator.Current();
  st.predicted_downtime_ms = at_decision.predicted_downtime_ms;
  st.qemu_expected_downtime_ms = at_decision.qemu_expected_downtime_ms;
  st.reason = decided ? decided_reason : "requested";
  st.iterations = iterations;
  phase = EnginePhase::kSwitchover;
  bool paused = false;
  // Before STOP_COPY: roll back like Cancel(); the source keeps running.
  auto cancel = [&](const Status& error) {
    (void)Rollback();
    if (paused && hooks.resume_vcpus) hooks.resume_vcpus();
    phase = EnginePhase::kCancelled;
    return error;
  };
  // After STOP_COPY: the migration is lost; the source may still resume.
  auto fail = [&](const Status& error) {
    (void)Rollback();
    if (paused && hooks.resume_vcpus) hooks.resume_vcpus();
    phase = EnginePhase::kFailed;
    return error;
  };
  std::vector<DeviceSession*> sessions = Sessions();

  uint64_t t = clock.NowNs();
  Status s = MoveDevicesToP2p(sessions);
  if (!s.ok()) return cancel(s);
  st.p2p_ns = clock.NowNs() - t;

  st.paused_ns = clock.NowNs();
  s = hooks.pause_vcpus();
  if (!s.ok()) return cancel(s.WithContext("pausing the vCPUs"));
  paused = true;
  const uint64_t bytes0 = transport.bytes_written();

  t = clock.NowNs();
  DirtyRam::SyncResult harvest = ram->Sync();
  st.pause_ns = t - st.paused_ns;
  st.final_sync_ns = clock.NowNs() - t;
  (void)harvest;  // a failing source's windows are pending: sent below

  t = clock.NowNs();
  s = MoveDevicesToStop(sessions, MigState::kStopCopy);
  if (!s.ok()) return cancel(s);
  st.device_stop_ns = clock.NowNs() - t;

  // Every device's data_fd to its end: the pre-copy drain continues on the
  // same fds; devices that were not pre-copying have fresh ones.
  t = clock.NowNs();
  if (precopy_drain) {
    precopy_drain->EnterStopCopy();
    Result<bool> r =
        DrainDevices(*precopy_drain, kNoLimit, kNoLimit, st.device_bytes);
    if (!r.ok()) return fail(r.status());
  }
  std::vector<DrainDevice> fresh;
  for (size_t i = 0; i < devices.size(); ++i) {
    const bool precopied =
        options.device_precopy && devices[i]->capabilities().pre_copy;
    if (!precopied) {
      fresh.push_back({static_cast<uint32_t>(i), devices[i]->data_fd(),
                       devices[i]->name()});
    }
  }
  if (!fresh.empty()) {
    Result<std::unique_ptr<DeviceDrain>> drain =
        DeviceDrain::Create(fresh, DataPhase::kStopCopy, options.drain);
    if (!drain.ok()) return fail(drain.status());
    Result<bool> r = DrainDevices(**drain, kNoLimit, kNoLimit, st.device_bytes);
    if (!r.ok()) return fail(r.status());
  }
  for (size_t i = 0; i < devices.size(); ++i) {
    s = writer->EndDevice(static_cast<uint32_t>(i));
    if (!s.ok()) return fail(s);
  }
  st.device_drain_ns = clock.NowNs() - t;

  t = clock.NowNs();
  Result<RamChannelStats> ram_sent = ram->Send(*channel, {}, false);
  if (!ram_sent.ok()) return fail(ram_sent.status());
  st.ram_pages = ram_sent->pages;
  st.ram_wire_bytes = ram_sent->wire_bytes;
  st.ram_ns = clock.NowNs() - t;

  t = clock.NowNs();
  s = writer->Finish();
  if (!s.ok()) return fail(s);
  st.last_byte_ns = clock.NowNs();
  st.finish_ns = st.last_byte_ns - t;
  st.source_downtime_ns = st.last_byte_ns - st.paused_ns;
  st.stream_bytes = transport.bytes_written() - bytes0;

  // The fixed costs, measured: fed back for the record and the next run.
  auto record = [&](FixedCost cost, uint64_t ns) {
    fixed_ns[static_cast<size_t>(cost)] = ns;
    estimator.RecordFixedCost(cost, ns);
  };
  record(FixedCost::kFinalSync, st.final_sync_ns + st.pause_ns);
  record(FixedCost::kDeviceStop, st.device_stop_ns + st.p2p_ns);
  const Estimate now = estimator.Current();
  const double device_send_ns =
      now.bandwidth_bps > 0
          ? static_cast<double>(st.device_bytes) / now.bandwidth_bps * 1e9
          : 0;
  record(FixedCost::kDrainLatency,
         static_cast<uint64_t>(std::max(
             0.0, static_cast<double>(st.device_drain_ns) - device_send_ns)));

  // Logging off; the devices' saving sessions end (STOP). Outside the
  // downtime: the last byte is already with the transport.
  precopy_drain.reset();
  (void)ram->Stop();
  for (DeviceSession* d : sessions) (void)d->Transition(MigState::kStop);

  total_ram_pages += st.ram_pages;
  total_device_bytes += st.device_bytes;
  st.total_ram_pages = total_ram_pages;
  st.total_device_bytes = total_device_bytes;
  st.total_stream_bytes = transport.bytes_written();
  st.total_time_ns = st.last_byte_ns - start_ns;
  phase = EnginePhase::kCompleted;
  return st;
}

}  // namespace converge
