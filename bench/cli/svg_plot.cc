#include "bench/cli/svg_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>

namespace converge::bench {
namespace {

constexpr const char* kPalette[] = {"#1f77b4", "#d62728", "#2ca02c",
                                    "#ff7f0e", "#9467bd", "#8c564b"};
constexpr int kMarginLeft = 80, kMarginRight = 20, kMarginTop = 40;
constexpr int kPanelGap = 30, kMarginBottom = 50;

std::string Escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string FormatTick(double v) {
  char buf[32];
  double a = std::fabs(v);
  if (a != 0 && (a >= 1e6 || a < 1e-3)) {
    snprintf(buf, sizeof buf, "%.3g", v);
  } else {
    snprintf(buf, sizeof buf, "%.6g", v);
  }
  return buf;
}

struct Range {
  double lo = std::numeric_limits<double>::infinity();
  double hi = -std::numeric_limits<double>::infinity();
  void Add(double v) {
    if (!std::isfinite(v)) return;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  // A usable, non-empty range from the ticks that cover it.
  std::vector<double> Ticks(bool from_zero) {
    if (!std::isfinite(lo)) lo = hi = 0;
    if (from_zero) {
      lo = std::min(lo, 0.0);
      hi = std::max(hi, 0.0);
    }
    if (hi - lo < 1e-12) {
      hi = lo + (lo == 0 ? 1 : std::fabs(lo) * 0.1);
    }
    std::vector<double> t = NiceTicks(lo, hi);
    lo = t.front();
    hi = t.back();
    return t;
  }
};

}  // namespace

std::vector<double> NiceTicks(double lo, double hi, int target) {
  if (!(hi > lo)) return {lo, lo + 1};
  double raw = (hi - lo) / std::max(1, target - 1);
  double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    step = m * mag;
    if (step >= raw) break;
  }
  double first = std::floor(lo / step) * step;
  double last = std::ceil(hi / step) * step;
  std::vector<double> ticks;
  for (double v = first; v <= last + step * 1e-9; v += step) {
    ticks.push_back(std::fabs(v) < step * 1e-9 ? 0.0 : v);
  }
  return ticks;
}

std::string RenderSvg(const PlotFigure& fig) {
  const int n = static_cast<int>(fig.panels.size());
  const int plot_w = fig.width_px - kMarginLeft - kMarginRight;
  const int height = kMarginTop + n * fig.panel_height_px +
                     std::max(0, n - 1) * kPanelGap + kMarginBottom;
  std::ostringstream svg;
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << fig.width_px
      << "\" height=\"" << height << "\" font-family=\"sans-serif\" "
      << "font-size=\"12\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << "<text x=\"" << fig.width_px / 2 << "\" y=\"24\" font-size=\"16\" "
      << "text-anchor=\"middle\">" << Escape(fig.title) << "</text>\n";

  Range xr;
  for (const PlotPanel& p : fig.panels) {
    for (const PlotSeries& s : p.series) {
      for (double x : s.x) xr.Add(x);
    }
  }
  std::vector<double> xticks = xr.Ticks(false);
  auto px = [&](double x) {
    return kMarginLeft + (x - xr.lo) / (xr.hi - xr.lo) * plot_w;
  };

  for (int i = 0; i < n; ++i) {
    const PlotPanel& panel = fig.panels[i];
    const int top = kMarginTop + i * (fig.panel_height_px + kPanelGap);
    const int h = fig.panel_height_px;
    Range yr;
    for (const PlotSeries& s : panel.series) {
      for (double y : s.y) yr.Add(y);
    }
    std::vector<double> yticks = yr.Ticks(panel.y_from_zero);
    auto py = [&](double y) {
      return top + h - (y - yr.lo) / (yr.hi - yr.lo) * h;
    };
    // Frame, grid and ticks.
    svg << "<rect x=\"" << kMarginLeft << "\" y=\"" << top << "\" width=\""
        << plot_w << "\" height=\"" << h
        << "\" fill=\"none\" stroke=\"#333\"/>\n";
    for (double y : yticks) {
      svg << "<line x1=\"" << kMarginLeft << "\" x2=\"" << kMarginLeft + plot_w
          << "\" y1=\"" << py(y) << "\" y2=\"" << py(y)
          << "\" stroke=\"#ddd\"/>\n<text x=\"" << kMarginLeft - 6 << "\" y=\""
          << py(y) + 4 << "\" text-anchor=\"end\">" << FormatTick(y)
          << "</text>\n";
    }
    for (double x : xticks) {
      svg << "<line x1=\"" << px(x) << "\" x2=\"" << px(x) << "\" y1=\"" << top
          << "\" y2=\"" << top + h << "\" stroke=\"#eee\"/>\n";
      if (i == n - 1) {
        svg << "<text x=\"" << px(x) << "\" y=\"" << top + h + 16
            << "\" text-anchor=\"middle\">" << FormatTick(x) << "</text>\n";
      }
    }
    svg << "<text transform=\"translate(18," << top + h / 2
        << ") rotate(-90)\" text-anchor=\"middle\">" << Escape(panel.y_label)
        << "</text>\n";
    // Series.
    for (size_t k = 0; k < panel.series.size(); ++k) {
      const PlotSeries& s = panel.series[k];
      const char* color = kPalette[k % std::size(kPalette)];
      std::ostringstream points;
      size_t m = std::min(s.x.size(), s.y.size());
      for (size_t j = 0; j < m; ++j) {
        if (!std::isfinite(s.x[j]) || !std::isfinite(s.y[j])) continue;
        points << px(s.x[j]) << "," << py(s.y[j]) << " ";
        if (s.markers) {
          svg << "<circle cx=\"" << px(s.x[j]) << "\" cy=\"" << py(s.y[j])
              << "\" r=\"3\" fill=\"" << color << "\"/>\n";
        }
      }
      svg << "<polyline fill=\"none\" stroke=\"" << color
          << "\" stroke-width=\"2\"" << (s.dashed ? " stroke-dasharray=\"6,4\"" : "")
          << " points=\"" << points.str() << "\"/>\n";
    }
    // Legend, top right of the panel, on a box that keeps it readable over
    // the lines under it.
    const int lx = kMarginLeft + plot_w - 210;
    svg << "<rect x=\"" << lx - 8 << "\" y=\"" << top + 4 << "\" width=\"206\""
        << " height=\"" << 16 * panel.series.size() + 8
        << "\" fill=\"white\" fill-opacity=\"0.85\" stroke=\"#ccc\"/>\n";
    for (size_t k = 0; k < panel.series.size(); ++k) {
      const PlotSeries& s = panel.series[k];
      const char* color = kPalette[k % std::size(kPalette)];
      const int ly = top + 16 + static_cast<int>(k) * 16;
      svg << "<line x1=\"" << lx << "\" x2=\"" << lx + 24 << "\" y1=\"" << ly - 4
          << "\" y2=\"" << ly - 4 << "\" stroke=\"" << color
          << "\" stroke-width=\"2\""
          << (s.dashed ? " stroke-dasharray=\"6,4\"" : "") << "/>\n<text x=\""
          << lx + 30 << "\" y=\"" << ly << "\">" << Escape(s.label)
          << "</text>\n";
    }
  }
  svg << "<text x=\"" << kMarginLeft + plot_w / 2 << "\" y=\"" << height - 12
      << "\" text-anchor=\"middle\">" << Escape(fig.x_label) << "</text>\n"
      << "</svg>\n";
  return svg.str();
}

Status WriteSvg(const PlotFigure& figure, const std::string& path) {
  std::ofstream out(path);
  if (!out) return ErrnoStatus(errno, "open " + path + " for writing");
  out << RenderSvg(figure);
  out.close();
  if (!out) return ErrnoStatus(errno, "write " + path);
  return OkStatus();
}

}  // namespace converge::bench
