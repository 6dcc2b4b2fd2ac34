#include "bench/cli/migration_summary.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>

#include "bench/cli/progress.h"

namespace converge::bench {
namespace {

constexpr double kMiB = 1024.0 * 1024.0;
constexpr double kGiB = 1024.0 * kMiB;

void WriteIteration(JsonWriter& json, const IterationRecord& r) {
  json.BeginObject()
      .Field("iteration", r.iteration)
      .Field("time_ms", r.time_ms)
      .Field("pending_bytes", r.pending_bytes)
      .Field("ram_pending_bytes", r.ram_pending_bytes)
      .Field("device_pending_bytes", r.device_pending_bytes)
      .Field("dirty_rate_bps", r.dirty_rate_bps)
      .Field("bandwidth_bps", r.bandwidth_bps)
      .Field("predicted_downtime_ms", r.predicted_downtime_ms)
      .Field("bytes_sent", r.bytes_sent)
      .Field("verdict", r.verdict)
      .EndObject();
}

std::string LinkText(double gbps) {
  if (gbps <= 0) return "uncapped";
  char buf[32];
  snprintf(buf, sizeof buf, "%g Gb/s", gbps);
  return buf;
}

}  // namespace

void WriteSummaryJson(JsonWriter& json, const MigrationSummary& s) {
  json.BeginObject()
      .Field("workload", s.workload)
      .Field("downtime_limit_ms", s.downtime_limit_ms)
      .Field("predicted_downtime_ms", s.predicted_downtime_ms)
      .Field("measured_downtime_ms", s.measured_downtime_ms)
      .Field("total_time_ms", s.total_time_ms)
      .Field("ram_bytes", s.ram_bytes)
      .Field("bytes_sent", s.bytes_sent)
      .Field("device_bytes", s.device_bytes)
      .Field("iterations", s.iterations)
      .Field("converged", s.converged);
  json.Key("verified");
  if (s.verified.has_value()) {
    json.Bool(*s.verified);
  } else {
    json.Null();
  }
  json.Field("verification", s.verification)
      .Field("mode", s.mode)
      .Field("codec", s.codec)
      .Field("link_gbps", s.link_gbps)
      .Field("devices", s.devices)
      .Field("device_state_bytes", s.device_state_bytes)
      .Field("ram_pages_sent", s.ram_pages_sent)
      .Field("zero_pages_sent", s.zero_pages_sent)
      .Field("verdict", s.verdict)
      .Field("decision", s.decision)
      .Field("decision_reason", s.decision_reason)
      .Field("virtual_time", s.virtual_time)
      .Field("wall_time_ms", s.wall_time_ms);
  json.Key("error");
  if (s.error.empty()) {
    json.Null();
  } else {
    json.String(s.error);
  }
  json.Key("per_iteration").BeginArray();
  for (const IterationRecord& r : s.per_iteration) WriteIteration(json, r);
  json.EndArray().EndObject();
}

std::string SummaryJson(const MigrationSummary& s) {
  JsonWriter json;
  WriteSummaryJson(json, s);
  return json.str() + "\n";
}

std::string SummariesJson(const std::vector<MigrationSummary>& all) {
  JsonWriter json;
  json.BeginArray();
  for (const MigrationSummary& s : all) WriteSummaryJson(json, s);
  json.EndArray();
  return json.str() + "\n";
}

std::string SummaryText(const MigrationSummary& s) {
  std::ostringstream out;
  const double total_s = s.total_time_ms / 1000;
  out << "converge-bench " << s.mode << ": " << s.workload << " guest, "
      << FormatBytes(static_cast<double>(s.ram_bytes)) << " RAM, "
      << s.devices << " device(s) of "
      << FormatBytes(static_cast<double>(s.device_state_bytes)) << ", codec "
      << s.codec << ", link "
      << LinkText(s.link_gbps)
      << (s.virtual_time ? " (virtual time)" : "") << "\n";
  if (!s.error.empty()) out << "  FAILED:              " << s.error << "\n";
  out << "  downtime limit:      " << FormatMs(s.downtime_limit_ms) << "\n"
      << "  predicted downtime:  " << FormatMs(s.predicted_downtime_ms)
      << "  (estimate when switchover was decided)\n"
      << "  measured downtime:   " << FormatMs(s.measured_downtime_ms)
      << (s.virtual_time ? "  (vCPU pause to the last byte on the link)\n"
                         : "  (vCPU pause to destination ready)\n")
      << "  total time:          " << FormatMs(s.total_time_ms) << "\n"
      << "  iterations:          " << s.iterations << "\n"
      << "  sent:                " << FormatBytes(static_cast<double>(s.bytes_sent))
      << " (" << FormatBytes(static_cast<double>(s.device_bytes))
      << " device state, " << s.ram_pages_sent << " RAM pages of which "
      << s.zero_pages_sent << " zero)";
  if (total_s > 0) {
    out << ", "
        << FormatRate(static_cast<double>(s.bytes_sent) / total_s)
        << " on average";
  }
  out << "\n"
      << "  converged:           " << (s.converged ? "yes" : "no") << " ("
      << s.decision << (s.decision_reason.empty() ? "" : ": ")
      << s.decision_reason << ")\n"
      << "  verified:            "
      << (!s.verified.has_value() ? "n/a" : *s.verified ? "yes" : "NO");
  if (!s.verification.empty()) out << " (" << s.verification << ")";
  out << "\n";
  return out.str();
}

std::string ProgressText(const IterationRecord& r, double limit_ms) {
  std::ostringstream out;
  out << "iter " << r.iteration << "  pending "
      << FormatBytes(static_cast<double>(r.pending_bytes)) << "  dirty "
      << FormatRate(r.dirty_rate_bps) << "  bw " << FormatRate(r.bandwidth_bps)
      << "  predicted " << FormatMs(r.predicted_downtime_ms) << " / limit "
      << FormatMs(limit_ms) << "  " << r.verdict;
  return out.str();
}

PlotFigure IterationFigure(const MigrationSummary& s) {
  PlotFigure fig;
  fig.title = "converge " + s.mode + ": " + s.workload + ", limit " +
              FormatMs(s.downtime_limit_ms) + ", " + s.codec;
  fig.x_label = "pre-copy iteration";
  PlotSeries pending{"pending total", {}, {}};
  PlotSeries ram{"RAM pending", {}, {}};
  ram.dashed = true;
  PlotSeries predicted{"predicted downtime", {}, {}};
  // MiB, or GiB for large guests (the model's terabytes).
  uint64_t max_pending = 0;
  for (const IterationRecord& r : s.per_iteration) {
    max_pending = std::max(max_pending, r.pending_bytes);
  }
  const bool gib = static_cast<double>(max_pending) >= 10 * kGiB;
  const double unit = gib ? kGiB : kMiB;
  for (const IterationRecord& r : s.per_iteration) {
    double x = static_cast<double>(r.iteration);
    pending.x.push_back(x);
    pending.y.push_back(static_cast<double>(r.pending_bytes) / unit);
    ram.x.push_back(x);
    ram.y.push_back(static_cast<double>(r.ram_pending_bytes) / unit);
    predicted.x.push_back(x);
    // No prediction while the estimator is still measuring: a gap, not 0.
    predicted.y.push_back(r.verdict == "measuring"
                              ? std::numeric_limits<double>::quiet_NaN()
                              : r.predicted_downtime_ms);
  }
  PlotSeries limit{"downtime limit", {}, {}, /*dashed=*/true,
                   /*markers=*/false};
  if (!s.per_iteration.empty()) {
    limit.x = {predicted.x.front(), predicted.x.back()};
    limit.y = {s.downtime_limit_ms, s.downtime_limit_ms};
  }
  PlotPanel bytes{gib ? "pending (GiB)" : "pending (MiB)", {pending, ram}};
  PlotPanel downtime{"predicted downtime (ms)", {predicted, limit}};
  fig.panels = {bytes, downtime};
  return fig;
}

Status WriteTextFile(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  if (!out) return ErrnoStatus(errno, "open " + path + " for writing");
  out << text;
  out.close();
  if (!out) return ErrnoStatus(errno, "write " + path);
  return OkStatus();
}

}  // namespace converge::bench
