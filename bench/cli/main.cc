// converge-bench: the harness (demo, sweep, model). See bench/cli/commands.h.

#include <csignal>
#include <string>
#include <vector>

#include "bench/cli/commands.h"

int main(int argc, char** argv) {
  // A peer that closed its end must fail the write (EPIPE, reported with
  // its cause), not kill the process.
  std::signal(SIGPIPE, SIG_IGN);
  std::vector<std::string> args(argv + 1, argv + argc);
  return converge::bench::RunConvergeBench(args, stdout, stderr);
}
