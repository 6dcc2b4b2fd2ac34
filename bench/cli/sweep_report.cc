#include "bench/cli/sweep_report.h"

#include <cstdio>
#include <sstream>

#include "bench/cli/progress.h"

namespace converge::bench {
namespace {

std::string Cell(const std::string& text, int width) {
  if (static_cast<int>(text.size()) >= width) return text + " ";
  return std::string(width - text.size(), ' ') + text + " ";
}

std::string Verified(const MigrationSummary& s) {
  if (!s.verified.has_value()) return "n/a";
  return *s.verified ? "yes" : "NO";
}

}  // namespace

std::string SweepTable(const std::vector<MigrationSummary>& runs) {
  std::ostringstream out;
  out << Cell("limit", 9) << Cell("predicted", 10) << Cell("measured", 10)
      << Cell("total", 10) << Cell("sent", 11) << Cell("iterations", 10)
      << Cell("converged", 9) << Cell("verified", 8) << "\n";
  for (const MigrationSummary& s : runs) {
    out << Cell(FormatMs(s.downtime_limit_ms), 9)
        << Cell(FormatMs(s.predicted_downtime_ms), 10)
        << Cell(FormatMs(s.measured_downtime_ms), 10)
        << Cell(FormatMs(s.total_time_ms), 10)
        << Cell(FormatBytes(static_cast<double>(s.bytes_sent)), 11)
        << Cell(std::to_string(s.iterations), 10)
        << Cell(s.converged ? "yes" : "no", 9) << Cell(Verified(s), 8);
    if (!s.error.empty()) out << " error: " << s.error;
    out << "\n";
  }
  return out.str();
}

std::string SweepCsv(const std::vector<MigrationSummary>& runs) {
  std::ostringstream out;
  out << "workload,downtime_limit_ms,predicted_downtime_ms,"
         "measured_downtime_ms,total_time_ms,bytes_sent,device_bytes,"
         "iterations,converged,verified\n";
  for (const MigrationSummary& s : runs) {
    char line[512];
    snprintf(line, sizeof line, "%s,%.3f,%.3f,%.3f,%.3f,%llu,%llu,%llu,%s,%s\n",
             s.workload.c_str(), s.downtime_limit_ms, s.predicted_downtime_ms,
             s.measured_downtime_ms, s.total_time_ms,
             static_cast<unsigned long long>(s.bytes_sent),
             static_cast<unsigned long long>(s.device_bytes),
             static_cast<unsigned long long>(s.iterations),
             s.converged ? "true" : "false",
             !s.verified.has_value() ? "" : *s.verified ? "true" : "false");
    out << line;
  }
  return out.str();
}

PlotFigure SweepFigure(const std::vector<MigrationSummary>& runs) {
  PlotFigure fig;
  fig.title = "downtime limit sweep";
  if (!runs.empty()) {
    fig.title += ": " + runs.front().workload + " guest, " +
                 FormatBytes(static_cast<double>(runs.front().ram_bytes)) +
                 ", " + runs.front().codec;
  }
  fig.x_label = "downtime limit (ms)";
  PlotSeries measured{"measured downtime", {}, {}};
  PlotSeries predicted{"predicted downtime", {}, {}};
  predicted.dashed = true;
  PlotSeries limit{"limit (y = x)", {}, {}, /*dashed=*/true,
                   /*markers=*/false};
  PlotSeries total{"total migration time", {}, {}};
  for (const MigrationSummary& s : runs) {
    measured.x.push_back(s.downtime_limit_ms);
    measured.y.push_back(s.measured_downtime_ms);
    predicted.x.push_back(s.downtime_limit_ms);
    predicted.y.push_back(s.predicted_downtime_ms);
    limit.x.push_back(s.downtime_limit_ms);
    limit.y.push_back(s.downtime_limit_ms);
    total.x.push_back(s.downtime_limit_ms);
    total.y.push_back(s.total_time_ms / 1000);
  }
  PlotPanel downtime{"downtime (ms)", {measured, predicted, limit}};
  PlotPanel time{"total time (s)", {total}};
  fig.panels = {downtime, time};
  return fig;
}

}  // namespace converge::bench
