// MigrationConfig: what one converge-bench migration runs (guest, devices,
// link, codec, limit), the flags every command shares to set it, and its
// validation.
//
// Thread-safety: plain values and pure functions.

#ifndef CONVERGE_BENCH_CLI_MIGRATION_CONFIG_H_
#define CONVERGE_BENCH_CLI_MIGRATION_CONFIG_H_

#include <cstdint>
#include <string>

#include "base/status.h"
#include "bench/cli/flags.h"
#include "bench/cli/migration_summary.h"
#include "engine/policy.h"
#include "io/codec.h"

namespace converge::bench {

struct MigrationConfig {
  // Guest workload: seq, random, hotcold, idle, burst.
  std::string workload = "hotcold";
  // Guest RAM in GiB (fractions allowed: 0.25 is 256 MiB).
  double ram_gib = 1;
  // Guest page writes per second while it runs (0 in the micro-VM: as fast
  // as the vCPU goes).
  uint64_t write_rate_pages = 25000;
  // Emulated PRE_COPY devices and the size of each one's state.
  uint64_t devices = 2;
  uint64_t device_state_mib = 64;
  // How fast each running device changes its state.
  double device_dirty_mibps = 4;
  // Bandwidth cap in Gb/s; 0 = none (the demo's loopback runs free).
  double link_gbps = 0;
  // none, lz4 or zstd.
  std::string codec = "lz4";
  double downtime_limit_ms = 300;
  // Give up iterating after this many iterations or seconds and switch
  // over anyway (reported as not converged).
  uint64_t max_iterations = 60;
  double max_time_s = 40;
  // No progress lines on stderr.
  bool quiet = false;
};

// Registers the shared flags on `flags` (all but --downtime-ms, whose
// shape differs between commands, and --json).
void AddMigrationFlags(Flags& flags, MigrationConfig& config);

// Checks ranges and names; real_vm adds the micro-VM's limits (RAM at most
// 4 GiB). The error names the flag.
[[nodiscard]] Status ValidateConfig(const MigrationConfig& config,
                                    bool real_vm);

// "none", "lz4", "zstd".
[[nodiscard]] Result<Codec> ParseCodec(const std::string& name);

// The policy of a converge-bench migration: the limit, the cap, and the
// iteration/time limits with a forced switchover when they run out.
PolicyOptions MakePolicy(const MigrationConfig& config);

uint64_t RamBytes(const MigrationConfig& config);  // rounded down to pages
double LinkBps(const MigrationConfig& config);     // bytes per second

// A summary of a migration in `mode` ("demo" or "model") with the fields
// that come from the configuration filled in.
MigrationSummary SummaryOf(const MigrationConfig& config, std::string mode);

}  // namespace converge::bench

#endif  // CONVERGE_BENCH_CLI_MIGRATION_CONFIG_H_
