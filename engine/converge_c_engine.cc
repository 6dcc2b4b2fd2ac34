// The C API (engine/converge.h): the engine and destination calls.

#include <string>
#include <utility>

#include "engine/converge.h"
#include "engine/converge_c_internal.h"

namespace {

using converge::Status;
using converge::capi::CopyString;
using converge::capi::Guard;
using converge::capi::KernelOf;
using converge::capi::NullArgument;
using converge::capi::Report;

converge::EngineOptions ToOptions(const converge_engine_options& c) {
  converge::EngineOptions o;
  converge::PolicyOptions& p = o.policy;
  p.downtime_limit_ms = c.policy.downtime_limit_ms;
  p.bandwidth_cap_bps = c.policy.bandwidth_cap_bps;
  p.max_iterations = c.policy.max_iterations;
  p.max_total_time_ms = c.policy.max_total_time_ms;
  p.switchover_ack_required = c.policy.switchover_ack_required != 0;
  p.iteration_budget_bytes = c.policy.iteration_budget_bytes;
  p.iteration_budget_ms = c.policy.iteration_budget_ms;
  p.on_limit = c.policy.force_switchover_on_limit
                   ? converge::OnLimit::kForceSwitchover
                   : converge::OnLimit::kAbort;
  p.on_stall = c.policy.abort_on_stall ? converge::OnStall::kAbort
                                       : converge::OnStall::kContinue;
  o.codec.codec = static_cast<converge::Codec>(c.codec);
  o.codec.zstd_level = c.zstd_level;
  o.rearm_chunk_bytes = c.rearm_chunk_bytes;
  o.device_precopy = c.device_precopy != 0;
  return o;
}

}  // namespace

extern "C" {

converge_status converge_engine_create(converge_kernel* kernel,
                                       converge_transport* transport,
                                       const converge_engine_options* options,
                                       converge_engine** out) {
  if (transport == nullptr) return NullArgument("transport");
  if (out == nullptr) return NullArgument("out");
  return Guard([&] {
    converge_engine_options c;
    converge_engine_options_init(&c);
    if (options != nullptr) c = *options;
    if (c.codec < CONVERGE_CODEC_NONE || c.codec > CONVERGE_CODEC_ZSTD) {
      return Report(converge::InvalidArgumentError(
          "options.codec " + std::to_string(c.codec) + " is not a codec"));
    }
    auto e = converge::PrecopyEngine::Create(
        KernelOf(kernel), converge::Clock::Monotonic(), *transport->transport,
        ToOptions(c));
    if (!e.ok()) return Report(e.status());
    *out = new converge_engine{std::move(*e)};
    return CONVERGE_OK;
  });
}

void converge_engine_destroy(converge_engine* engine) { delete engine; }

#define CONVERGE_C_ENGINE(e)                          \
  do {                                                \
    if ((e) == nullptr) return NullArgument("engine"); \
  } while (0)

converge_status converge_engine_add_region(converge_engine* e, uint64_t gpa,
                                           uint64_t bytes, void* host) {
  CONVERGE_C_ENGINE(e);
  if (host == nullptr) return NullArgument("host");
  return Guard([&] {
    return Report(e->engine->AddRegion(
        {gpa, bytes, static_cast<uint8_t*>(host)}));
  });
}

converge_status converge_engine_add_source(converge_engine* e,
                                           converge_source* source, int dma) {
  CONVERGE_C_ENGINE(e);
  if (source == nullptr) return NullArgument("source");
  return Guard([&] {
    return Report(e->engine->AddSource(
        source->source,
        dma ? converge::SourceKind::kDma : converge::SourceKind::kVcpu));
  });
}

converge_status converge_engine_add_device(converge_engine* e,
                                           const char* name, int device_fd,
                                           uint32_t* id_out) {
  CONVERGE_C_ENGINE(e);
  if (name == nullptr) return NullArgument("name");
  return Guard([&] {
    auto id = e->engine->AddDevice(name, device_fd);
    if (!id.ok()) return Report(id.status());
    if (id_out != nullptr) *id_out = *id;
    return CONVERGE_OK;
  });
}

converge_status converge_engine_start(converge_engine* e) {
  CONVERGE_C_ENGINE(e);
  return Guard([&] { return Report(e->engine->Start()); });
}

converge_status converge_engine_sync(converge_engine* e,
                                     converge_sync_stats* out) {
  CONVERGE_C_ENGINE(e);
  return Guard([&] {
    auto s = e->engine->Sync();
    if (!s.ok()) return Report(s.status());
    if (out != nullptr) {
      *out = converge_sync_stats{s->sync_ns,          s->dirtied_pages,
                                 s->ram_pending_pages, s->wws_pages,
                                 s->device_pending_bytes,
                                 !s->source_error.ok()};
    }
    return CONVERGE_OK;
  });
}

converge_status converge_engine_estimate(converge_engine* e,
                                         converge_estimate* out) {
  CONVERGE_C_ENGINE(e);
  if (out == nullptr) return NullArgument("out");
  return Guard([&] {
    const converge::Estimate x = e->engine->CurrentEstimate();
    *out = converge_estimate{};
    out->verdict = static_cast<converge_verdict>(x.verdict);
    out->syncs = x.syncs;
    out->ram_pending_bytes = x.ram_pending_bytes;
    out->device_pending_bytes = x.device_pending_bytes;
    out->pending_bytes = x.pending_bytes;
    out->bandwidth_measured = x.bandwidth_measured;
    out->bandwidth_bps = x.bandwidth_bps;
    out->dirty_rate_bps = x.dirty_rate_bps;
    out->fixed_costs_ms = x.fixed_costs_ms;
    out->predicted_downtime_ms = x.predicted_downtime_ms;
    out->qemu_expected_downtime_ms = x.qemu_expected_downtime_ms;
    out->lambda = x.lambda;
    out->wws_floor_bytes = x.wws_floor_bytes;
    out->has_time_to_go = x.time_to_go_ms.has_value();
    out->iterations_to_go = x.iterations_to_go.value_or(0);
    out->time_to_go_ms = x.time_to_go_ms.value_or(0);
    out->smallest_reachable_limit_ms = x.smallest_reachable_limit_ms;
    out->has_throttle = x.throttle_percent.has_value();
    out->throttle_percent = x.throttle_percent.value_or(0);
    std::string cause;
    if (x.cause != converge::StallCause::kNone) {
      cause = std::string(converge::StallCauseName(x.cause));
      if (!x.cause_name.empty()) cause += ": " + x.cause_name;
    }
    CopyString(cause, out->cause, sizeof out->cause);
    return CONVERGE_OK;
  });
}

converge_status converge_engine_iterate(converge_engine* e,
                                        converge_iteration_stats* out) {
  CONVERGE_C_ENGINE(e);
  return Guard([&] {
    auto s = e->engine->Iterate();
    if (!s.ok()) return Report(s.status());
    if (out != nullptr) {
      *out = converge_iteration_stats{
          s->iteration,      s->duration_ns,       s->ram_pages_sent,
          s->ram_zero_pages, s->ram_wire_bytes,    s->ram_pending_pages,
          s->device_bytes,   s->stream_bytes,      s->budget_exhausted,
          s->predicted_downtime_ms};
    }
    return CONVERGE_OK;
  });
}

converge_status converge_engine_should_switchover(converge_engine* e,
                                                  converge_decision* out) {
  CONVERGE_C_ENGINE(e);
  if (out == nullptr) return NullArgument("out");
  return Guard([&] {
    const converge::SwitchoverDecision d = e->engine->ShouldSwitchover();
    out->action = static_cast<converge_action>(d.action);
    CopyString(d.reason, out->reason, sizeof out->reason);
    return CONVERGE_OK;
  });
}

converge_status converge_engine_switchover(converge_engine* e,
                                           converge_pause_fn pause,
                                           converge_resume_fn resume,
                                           void* context,
                                           converge_switchover_stats* out) {
  CONVERGE_C_ENGINE(e);
  if (pause == nullptr) return NullArgument("pause");
  return Guard([&] {
    converge::SwitchoverHooks hooks;
    hooks.pause_vcpus = [pause, context]() -> Status {
      const int rc = pause(context);
      if (rc == 0) return converge::OkStatus();
      return converge::IoError("the pause callback returned " +
                               std::to_string(rc));
    };
    if (resume != nullptr) hooks.resume_vcpus = [resume, context] {
      resume(context);
    };
    auto s = e->engine->Switchover(hooks);
    if (!s.ok()) return Report(s.status());
    if (out != nullptr) {
      *out = converge_switchover_stats{
          s->predicted_downtime_ms, s->qemu_expected_downtime_ms,
          s->paused_ns,             s->last_byte_ns,
          s->source_downtime_ns,    s->final_sync_ns,
          s->device_stop_ns,        s->device_drain_ns,
          s->ram_pages,             s->device_bytes,
          s->total_stream_bytes,    s->iterations};
    }
    return CONVERGE_OK;
  });
}

converge_status converge_engine_record_destination_apply(converge_engine* e,
                                                         uint64_t apply_ns) {
  CONVERGE_C_ENGINE(e);
  e->engine->RecordDestinationApply(apply_ns);
  return CONVERGE_OK;
}

converge_status converge_engine_cancel(converge_engine* e) {
  CONVERGE_C_ENGINE(e);
  return Guard([&] { return Report(e->engine->Cancel()); });
}

converge_status converge_destination_create(converge_kernel* kernel,
                                            converge_transport* transport,
                                            converge_destination** out) {
  if (transport == nullptr) return NullArgument("transport");
  if (out == nullptr) return NullArgument("out");
  return Guard([&] {
    auto d = converge::Destination::Create(
        KernelOf(kernel), converge::Clock::Monotonic(), *transport->transport);
    if (!d.ok()) return Report(d.status());
    *out = new converge_destination{std::move(*d)};
    return CONVERGE_OK;
  });
}

void converge_destination_destroy(converge_destination* d) { delete d; }

converge_status converge_destination_add_region(converge_destination* d,
                                                uint64_t gpa, uint64_t bytes,
                                                void* host) {
  if (d == nullptr) return NullArgument("destination");
  return Guard([&] {
    return Report(d->destination->AddRegion(
        {gpa, bytes, static_cast<uint8_t*>(host)}));
  });
}

converge_status converge_destination_add_device(converge_destination* d,
                                                const char* name,
                                                int device_fd,
                                                uint32_t* id_out) {
  if (d == nullptr) return NullArgument("destination");
  if (name == nullptr) return NullArgument("name");
  return Guard([&] {
    auto id = d->destination->AddDevice(name, device_fd);
    if (!id.ok()) return Report(id.status());
    if (id_out != nullptr) *id_out = *id;
    return CONVERGE_OK;
  });
}

converge_status converge_destination_prepare(converge_destination* d) {
  if (d == nullptr) return NullArgument("destination");
  return Guard([&] { return Report(d->destination->Prepare()); });
}

converge_status converge_destination_run(converge_destination* d,
                                         converge_destination_result* out) {
  if (d == nullptr) return NullArgument("destination");
  return Guard([&] {
    auto r = d->destination->Run();
    if (!r.ok()) return Report(r.status());
    if (out != nullptr) {
      *out = converge_destination_result{
          r->summary.ram_pages, r->summary.records, r->summary.stream_bytes,
          r->stream_end_ns, r->ready_ns};
    }
    return CONVERGE_OK;
  });
}

}  // extern "C"
