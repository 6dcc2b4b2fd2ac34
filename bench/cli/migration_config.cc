#include "bench/cli/migration_config.h"

#include <cmath>
#include <utility>

namespace converge::bench {
namespace {

constexpr uint64_t kPageBytes = 4096;
constexpr uint64_t kMaxDevices = 32;

}  // namespace

void AddMigrationFlags(Flags& flags, MigrationConfig& config) {
  flags.AddString("workload", &config.workload, "guest write pattern",
                  {"seq", "random", "hotcold", "idle", "burst"});
  flags.AddDouble("ram-gib", &config.ram_gib, "guest RAM in GiB");
  flags.AddUint("write-rate-pages", &config.write_rate_pages,
                "guest page writes per second");
  flags.AddUint("devices", &config.devices, "emulated PRE_COPY VFIO devices");
  flags.AddUint("device-state-mib", &config.device_state_mib,
                "state of each device in MiB");
  flags.AddDouble("device-dirty-mibps", &config.device_dirty_mibps,
                  "MiB/s each running device changes of its state");
  flags.AddDouble("link-gbps", &config.link_gbps,
                  "bandwidth cap in Gb/s (0 = none)");
  flags.AddString("codec", &config.codec, "compression of RAM and device data",
                  {"none", "lz4", "zstd"});
  flags.AddUint("max-iterations", &config.max_iterations,
                "switch over anyway after this many iterations");
  flags.AddDouble("max-time-s", &config.max_time_s,
                  "switch over anyway after this many seconds");
  flags.AddBool("quiet", &config.quiet, "no progress on stderr");
}

Status ValidateConfig(const MigrationConfig& config, bool real_vm) {
  const uint64_t ram = RamBytes(config);
  if (ram < 32 * kPageBytes) {
    return InvalidArgumentError("--ram-gib " + std::to_string(config.ram_gib) +
                                " is too small (at least 128 KiB)");
  }
  if (real_vm && config.ram_gib > 4) {
    return InvalidArgumentError(
        "--ram-gib " + std::to_string(config.ram_gib) +
        ": the micro-VM addresses at most 4 GiB (use `converge-bench model` "
        "for larger guests)");
  }
  if (config.devices > kMaxDevices) {
    return InvalidArgumentError("--devices " + std::to_string(config.devices) +
                                " is more than " + std::to_string(kMaxDevices));
  }
  if (config.devices > 0 && config.device_state_mib == 0) {
    return InvalidArgumentError("--device-state-mib must be > 0 with devices");
  }
  if (config.downtime_limit_ms <= 0) {
    return InvalidArgumentError("--downtime-ms must be > 0");
  }
  if (!real_vm && config.link_gbps <= 0) {
    return InvalidArgumentError(
        "--link-gbps must be > 0 for the model (it needs a link to model)");
  }
  if (config.max_time_s <= 0) {
    return InvalidArgumentError("--max-time-s must be > 0");
  }
  Result<Codec> codec = ParseCodec(config.codec);
  return codec.status();
}

Result<Codec> ParseCodec(const std::string& name) {
  for (Codec c : {Codec::kNone, Codec::kLz4, Codec::kZstd}) {
    if (CodecName(c) == name) return c;
  }
  return InvalidArgumentError("--codec: '" + name +
                              "' is not one of none, lz4, zstd");
}

PolicyOptions MakePolicy(const MigrationConfig& config) {
  PolicyOptions p;
  p.downtime_limit_ms = config.downtime_limit_ms;
  p.bandwidth_cap_bps = LinkBps(config);
  p.max_iterations = config.max_iterations;
  p.max_total_time_ms = static_cast<uint64_t>(config.max_time_s * 1000);
  p.on_limit = OnLimit::kForceSwitchover;
  p.on_stall = OnStall::kContinue;
  return p;
}

uint64_t RamBytes(const MigrationConfig& config) {
  double bytes = config.ram_gib * static_cast<double>(uint64_t{1} << 30);
  return static_cast<uint64_t>(bytes) / kPageBytes * kPageBytes;
}

double LinkBps(const MigrationConfig& config) {
  return config.link_gbps * 1e9 / 8;
}

MigrationSummary SummaryOf(const MigrationConfig& config, std::string mode) {
  MigrationSummary summary;
  summary.mode = std::move(mode);
  summary.workload = config.workload;
  summary.downtime_limit_ms = config.downtime_limit_ms;
  summary.ram_bytes = RamBytes(config);
  summary.codec = config.codec;
  summary.link_gbps = config.link_gbps;
  summary.devices = config.devices;
  summary.device_state_bytes = config.device_state_mib << 20;
  return summary;
}

}  // namespace converge::bench
