#include "bench/cli/svg_plot.h"

#include <gtest/gtest.h>

namespace converge::bench {
namespace {

TEST(SvgPlotTest, NiceTicksAreRoundAndCover) {
  std::vector<double> t = NiceTicks(0, 97);
  EXPECT_EQ(t.front(), 0);
  EXPECT_GE(t.back(), 97);
  EXPECT_EQ(t[1] - t[0], 20);
  t = NiceTicks(50, 1000);
  EXPECT_LE(t.front(), 50);
  EXPECT_GE(t.back(), 1000);
  EXPECT_EQ(t[1] - t[0], 200);
  t = NiceTicks(0.001, 0.0042);
  EXPECT_NEAR(t[1] - t[0], 0.001, 1e-12);
}

TEST(SvgPlotTest, RendersAxesLegendAndSeries) {
  PlotFigure fig;
  fig.title = "pre-copy <hotcold>";
  fig.x_label = "iteration";
  PlotPanel pending{"pending (MiB)", {}};
  pending.series.push_back({"pending", {1, 2, 3}, {900, 300, 80}});
  PlotPanel downtime{"downtime (ms)", {}};
  downtime.series.push_back({"predicted", {1, 2, 3}, {800, 250, 60}});
  downtime.series.push_back({"limit", {1, 3}, {300, 300}, true, false});
  fig.panels = {pending, downtime};
  std::string svg = RenderSvg(fig);
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("pre-copy &lt;hotcold&gt;"), std::string::npos);
  EXPECT_NE(svg.find(">pending (MiB)<"), std::string::npos);
  EXPECT_NE(svg.find(">downtime (ms)<"), std::string::npos);
  EXPECT_NE(svg.find(">iteration<"), std::string::npos);
  EXPECT_NE(svg.find(">predicted<"), std::string::npos);
  EXPECT_NE(svg.find("stroke-dasharray"), std::string::npos);
  // Three polylines, one per series.
  size_t count = 0;
  for (size_t p = svg.find("<polyline"); p != std::string::npos;
       p = svg.find("<polyline", p + 1)) {
    ++count;
  }
  EXPECT_EQ(count, 3u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
}

TEST(SvgPlotTest, WriteFailsWithPath) {
  PlotFigure fig;
  Status s = WriteSvg(fig, "/nonexistent-dir/plot.svg");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("/nonexistent-dir/plot.svg"), std::string::npos);
}

}  // namespace
}  // namespace converge::bench
