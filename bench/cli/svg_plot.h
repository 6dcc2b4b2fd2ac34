// SVG line charts written by the project: a figure is one or more panels
// stacked vertically over a shared x axis, each with its own y axis label
// (with units), ticks at round numbers, a grid and a legend.
//
// Thread-safety: none; pure functions over value types.

#ifndef CONVERGE_BENCH_CLI_SVG_PLOT_H_
#define CONVERGE_BENCH_CLI_SVG_PLOT_H_

#include <string>
#include <vector>

#include "base/status.h"

namespace converge::bench {

struct PlotSeries {
  std::string label;
  std::vector<double> x;
  std::vector<double> y;  // same length as x; non-finite points are skipped
  bool dashed = false;
  bool markers = true;
};

struct PlotPanel {
  std::string y_label;  // with units: "pending (MiB)"
  std::vector<PlotSeries> series;
  bool y_from_zero = true;  // include 0 in the y range
};

struct PlotFigure {
  std::string title;
  std::string x_label;  // with units: "iteration", "downtime limit (ms)"
  std::vector<PlotPanel> panels;
  int width_px = 900;
  int panel_height_px = 300;
};

// Round tick positions covering [lo, hi], about `target` of them.
std::vector<double> NiceTicks(double lo, double hi, int target = 6);

std::string RenderSvg(const PlotFigure& figure);
Status WriteSvg(const PlotFigure& figure, const std::string& path);

}  // namespace converge::bench

#endif  // CONVERGE_BENCH_CLI_SVG_PLOT_H_
