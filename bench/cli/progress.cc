#include "bench/cli/progress.h"

#include <unistd.h>

#include <cmath>

namespace converge::bench {

ProgressLine::ProgressLine(FILE* out)
    : out_(out), redraw_(isatty(fileno(out)) == 1) {}

void ProgressLine::Update(const std::string& line) {
  if (redraw_) {
    // \r returns to column 0; ESC[K clears what the previous line left.
    fprintf(out_, "\r%s\x1b[K", line.c_str());
    open_line_ = true;
  } else {
    fprintf(out_, "%s\n", line.c_str());
  }
  fflush(out_);
}

void ProgressLine::Finish() {
  if (open_line_) {
    fputc('\n', out_);
    fflush(out_);
    open_line_ = false;
  }
}

std::string FormatBytes(double bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int u = 0;
  double v = bytes;
  while (std::fabs(v) >= 1024 && u < 5) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", v, kUnits[u]);
  return buf;
}

std::string FormatRate(double bytes_per_second) {
  return FormatBytes(bytes_per_second) + "/s";
}

std::string FormatMs(double ms) {
  char buf[32];
  if (!std::isfinite(ms)) return "inf";
  if (ms >= 10000) {
    snprintf(buf, sizeof buf, "%.1f s", ms / 1000);
  } else {
    snprintf(buf, sizeof buf, ms < 10 ? "%.2f ms" : "%.0f ms", ms);
  }
  return buf;
}

}  // namespace converge::bench
