#include "bench/cli/migration_summary.h"

#include <gtest/gtest.h>

#include <cmath>

#include "bench/cli/sweep_report.h"

namespace converge::bench {
namespace {

MigrationSummary Sample(double limit_ms) {
  MigrationSummary s;
  s.mode = "demo";
  s.workload = "hotcold";
  s.downtime_limit_ms = limit_ms;
  s.predicted_downtime_ms = limit_ms * 0.5;
  s.measured_downtime_ms = limit_ms * 0.6;
  s.total_time_ms = 4000;
  s.ram_bytes = uint64_t{1} << 30;
  s.bytes_sent = 900 << 20;
  s.device_bytes = 130 << 20;
  s.iterations = 4;
  s.converged = true;
  s.verified = true;
  s.codec = "lz4";
  s.devices = 2;
  for (uint64_t i = 1; i <= 3; ++i) {
    IterationRecord r;
    r.iteration = i;
    r.pending_bytes = (4 - i) << 20;
    r.predicted_downtime_ms = 100.0 / static_cast<double>(i);
    r.verdict = "converging";
    s.per_iteration.push_back(r);
  }
  return s;
}

TEST(MigrationSummaryTest, JsonHasEveryDesignField) {
  std::string json = SummaryJson(Sample(300));
  for (const char* key :
       {"workload", "downtime_limit_ms", "predicted_downtime_ms",
        "measured_downtime_ms", "total_time_ms", "ram_bytes", "bytes_sent",
        "device_bytes", "iterations", "converged", "verified",
        "per_iteration", "codec", "link_gbps", "verdict"}) {
    EXPECT_NE(json.find("\"" + std::string(key) + "\":"), std::string::npos)
        << key;
  }
  EXPECT_NE(json.find("\"verified\": true"), std::string::npos);
  EXPECT_NE(json.find("\"error\": null"), std::string::npos);
}

TEST(MigrationSummaryTest, UnverifiableRunsSayNullNotFalse) {
  MigrationSummary s = Sample(300);
  s.verified.reset();
  s.error = "destination: stream ended early";
  std::string json = SummaryJson(s);
  EXPECT_NE(json.find("\"verified\": null"), std::string::npos);
  EXPECT_NE(json.find("\"error\": \"destination: stream ended early\""),
            std::string::npos);
  std::string text = SummaryText(s);
  EXPECT_NE(text.find("verified:            n/a"), std::string::npos);
  EXPECT_NE(text.find("FAILED"), std::string::npos);
}

TEST(MigrationSummaryTest, ArrayHoldsOneObjectPerRun) {
  std::string json = SummariesJson({Sample(50), Sample(100), Sample(200)});
  EXPECT_EQ(json.front(), '[');
  size_t count = 0;
  for (size_t p = 0; (p = json.find("\"downtime_limit_ms\"", p)) !=
                     std::string::npos;
       ++p) {
    ++count;
  }
  EXPECT_EQ(count, 3u);
}

TEST(MigrationSummaryTest, ProgressTextNamesEveryQuantity) {
  IterationRecord r;
  r.iteration = 7;
  r.pending_bytes = 3 << 20;
  r.dirty_rate_bps = 100 << 20;
  r.bandwidth_bps = 1 << 30;
  r.predicted_downtime_ms = 5.25;
  r.verdict = "ready";
  std::string line = ProgressText(r, 300);
  EXPECT_NE(line.find("iter 7"), std::string::npos);
  EXPECT_NE(line.find("pending 3.00 MiB"), std::string::npos);
  EXPECT_NE(line.find("dirty 100.00 MiB/s"), std::string::npos);
  EXPECT_NE(line.find("bw 1.00 GiB/s"), std::string::npos);
  EXPECT_NE(line.find("predicted 5.25 ms / limit 300 ms"), std::string::npos);
}

TEST(MigrationSummaryTest, IterationFigureHasUnitsLimitAndLegend) {
  PlotFigure fig = IterationFigure(Sample(300));
  ASSERT_EQ(fig.panels.size(), 2u);
  EXPECT_EQ(fig.panels[0].y_label, "pending (MiB)");
  EXPECT_EQ(fig.panels[1].y_label, "predicted downtime (ms)");
  ASSERT_EQ(fig.panels[1].series.size(), 2u);
  const PlotSeries& limit = fig.panels[1].series[1];
  EXPECT_EQ(limit.label, "downtime limit");
  EXPECT_EQ(limit.y, (std::vector<double>{300, 300}));
  EXPECT_EQ(fig.panels[0].series[0].y.size(), 3u);
  EXPECT_DOUBLE_EQ(fig.panels[0].series[0].y[0], 3.0);  // MiB
  std::string svg = RenderSvg(fig);
  EXPECT_NE(svg.find(">pre-copy iteration<"), std::string::npos);
}

TEST(MigrationSummaryTest, LargeGuestsPlotInGibAndMeasuringIsAGap) {
  MigrationSummary s = Sample(300);
  s.per_iteration[0].pending_bytes = uint64_t{1} << 40;
  s.per_iteration[0].verdict = "measuring";
  PlotFigure fig = IterationFigure(s);
  EXPECT_EQ(fig.panels[0].y_label, "pending (GiB)");
  EXPECT_DOUBLE_EQ(fig.panels[0].series[0].y[0], 1024.0);
  EXPECT_TRUE(std::isnan(fig.panels[1].series[0].y[0]));
  EXPECT_DOUBLE_EQ(fig.panels[1].series[0].y[1], 50.0);
}

TEST(SweepReportTest, CsvHasAHeaderAndOneRowPerLimit) {
  std::string csv = SweepCsv({Sample(50), Sample(100)});
  EXPECT_EQ(csv.rfind("workload,downtime_limit_ms,predicted_downtime_ms,"
                      "measured_downtime_ms,total_time_ms,bytes_sent,",
                      0),
            0u);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 3);
  EXPECT_NE(csv.find("\nhotcold,50.000,25.000,30.000,4000.000,"),
            std::string::npos);
  EXPECT_NE(csv.find(",4,true,true\n"), std::string::npos);
}

TEST(SweepReportTest, TableHasTheColumnsAndErrors) {
  MigrationSummary failed = Sample(100);
  failed.verified = false;
  failed.error = "destination: corrupt record";
  std::string table = SweepTable({Sample(50), failed});
  for (const char* col : {"limit", "predicted", "measured", "total", "sent",
                          "iterations", "converged", "verified"}) {
    EXPECT_NE(table.find(col), std::string::npos) << col;
  }
  EXPECT_NE(table.find("error: destination: corrupt record"),
            std::string::npos);
}

TEST(SweepReportTest, FigurePlotsDowntimeAndTimeAgainstTheLimit) {
  PlotFigure fig = SweepFigure({Sample(50), Sample(100), Sample(200)});
  EXPECT_EQ(fig.x_label, "downtime limit (ms)");
  ASSERT_EQ(fig.panels.size(), 2u);
  EXPECT_EQ(fig.panels[0].y_label, "downtime (ms)");
  EXPECT_EQ(fig.panels[1].y_label, "total time (s)");
  EXPECT_EQ(fig.panels[0].series[0].label, "measured downtime");
  EXPECT_EQ(fig.panels[0].series[0].y,
            (std::vector<double>{30, 60, 120}));
  EXPECT_EQ(fig.panels[1].series[0].y, (std::vector<double>{4, 4, 4}));
}

}  // namespace
}  // namespace converge::bench
