#include "bench/cli/model_migration.h"

#include <chrono>
#include <memory>

#include "bench/cli/emulated_devices.h"
#include "engine/precopy_engine.h"
#include "sim/emulated_kernel.h"
#include "sim/link_model.h"
#include "sim/link_transport.h"
#include "sim/model_ram_channel.h"
#include "sim/virtual_clock.h"
#include "sim/workload_model.h"
#include "vm/ram_fill.h"

namespace converge::bench {

Result<MigrationSummary> RunModelMigration(
    const MigrationConfig& config, const ContentCalibration& calibration,
    const IterationObserver& observer) {
  CONVERGE_ASSIGN_OR_RETURN(sim::WorkloadKind kind,
                            sim::ParseWorkload(config.workload));
  CONVERGE_ASSIGN_OR_RETURN(Codec codec, ParseCodec(config.codec));
  const auto wall_start = std::chrono::steady_clock::now();

  MigrationSummary summary = SummaryOf(config, "model");
  summary.virtual_time = true;
  summary.verification =
      "none: modelled memory has no content; measured downtime is the "
      "pause to the last byte on the modelled link";

  sim::VirtualClock clock;
  sim::LinkOptions link_options;
  link_options.bandwidth_bps = LinkBps(config);
  sim::LinkModel link(link_options);
  // The same content mix the micro-VM fills its RAM with.
  const RamFillOptions fill;
  sim::ContentOptions content_options;
  content_options.zero_fraction = fill.zero_fraction;
  content_options.text_fraction = fill.text_fraction;
  sim::ContentModel content(content_options);
  ApplyCalibration(calibration, content);

  const uint64_t num_pages = summary.ram_bytes / 4096;
  sim::WorkloadOptions workload_options;
  workload_options.kind = kind;
  workload_options.writes_per_second =
      static_cast<double>(config.write_rate_pages);
  sim::WorkloadModel workload(num_pages, workload_options);
  sim::ModelDirtySource source(clock, workload);

  const GuestRegion region{0, summary.ram_bytes, nullptr};
  sim::ModelRamChannel channel(clock, link, content, {region});
  sim::LinkTransport transport(clock, link);

  sim::EmulatedKernel kernel;
  EmulatedDevices devices(kernel, config, [&clock] { return clock.NowNs(); });

  EngineOptions options;
  options.policy = MakePolicy(config);
  options.codec.codec = codec;
  options.ram_channel = &channel;
  // The model's source needs no re-arming: one channel pass per iteration
  // instead of one per GiB.
  options.rearm_chunk_bytes = 0;
  CONVERGE_ASSIGN_OR_RETURN(
      std::unique_ptr<PrecopyEngine> engine,
      PrecopyEngine::Create(kernel, clock, transport, options));
  CONVERGE_RETURN_IF_ERROR(engine->AddRegion(region));
  CONVERGE_RETURN_IF_ERROR(engine->AddSource(&source));
  for (size_t i = 0; i < devices.size(); ++i) {
    CONVERGE_RETURN_IF_ERROR(
        engine->AddDevice(devices.name(i), devices.fd(i)).status());
  }

  SwitchoverHooks hooks;
  hooks.pause_vcpus = [&workload] {
    workload.set_paused(true);
    return OkStatus();
  };
  hooks.resume_vcpus = [&workload] { workload.set_paused(false); };
  CONVERGE_ASSIGN_OR_RETURN(
      SwitchoverStats sw,
      DriveMigration(*engine, clock, hooks, observer,
                     {.ram_outside_transport = true}, summary));
  CONVERGE_RETURN_IF_ERROR(transport.Close());
  summary.measured_downtime_ms = NsToMs(sw.source_downtime_ns);
  summary.zero_pages_sent = channel.total_zero_pages();
  summary.wall_time_ms = std::chrono::duration<double, std::milli>(
                             std::chrono::steady_clock::now() - wall_start)
                             .count();
  return summary;
}

}  // namespace converge::bench
