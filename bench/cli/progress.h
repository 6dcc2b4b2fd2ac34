// ProgressLine: live progress on stderr. On a terminal the line is redrawn
// in place; otherwise (a pipe, a CI log) each update is a plain line.
//
// Thread-safety: none; one reporting thread.

#ifndef CONVERGE_BENCH_CLI_PROGRESS_H_
#define CONVERGE_BENCH_CLI_PROGRESS_H_

#include <cstdint>
#include <cstdio>
#include <string>

namespace converge::bench {

class ProgressLine {
 public:
  // Redraws in place when `out` is a terminal.
  explicit ProgressLine(FILE* out = stderr);
  ProgressLine(FILE* out, bool redraw) : out_(out), redraw_(redraw) {}
  ~ProgressLine() { Finish(); }
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;

  void Update(const std::string& line);
  // Ends a redrawn line so following output starts on a fresh line.
  void Finish();

 private:
  FILE* out_;
  bool redraw_;
  bool open_line_ = false;
};

// Human-readable quantities: "1.50 GiB", "930 MiB/s", "12.3 ms".
std::string FormatBytes(double bytes);
std::string FormatRate(double bytes_per_second);
std::string FormatMs(double ms);

}  // namespace converge::bench

#endif  // CONVERGE_BENCH_CLI_PROGRESS_H_
