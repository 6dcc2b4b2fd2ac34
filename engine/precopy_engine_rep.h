// The state behind a PrecopyEngine (engine/precopy_engine.h), shared by
// precopy_engine.cc (configuration, pre-copy, Cancel) and switchover.cc.
// Internal: not installed, not for callers.

#ifndef CONVERGE_ENGINE_PRECOPY_ENGINE_REP_H_
#define CONVERGE_ENGINE_PRECOPY_ENGINE_REP_H_

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/dirty_ram.h"
#include "engine/precopy_engine.h"
#include "io/device_drain.h"
#include "io/stream_writer.h"

namespace converge {

class PrecopyEngine::Rep {
 public:
  Rep(Kernel& kernel, Clock& clock, Transport& transport,
      EngineOptions options);

  // The raw sessions, for the multi-device transitions.
  std::vector<DeviceSession*> Sessions() const;
  // Reads every device's data available now (PRE_COPY) or to its end
  // (STOP_COPY) from drain and frames it; stops early once transport has
  // taken max_bytes more or the clock reaches deadline_ns. Returns whether
  // it stopped early.
  Result<bool> DrainDevices(DeviceDrain& drain, uint64_t max_bytes,
                            uint64_t deadline_ns, uint64_t& device_bytes);
  // Stops logging, closes the drains, returns devices to RUNNING.
  Status Rollback();
  Result<SwitchoverStats> Switchover(const SwitchoverHooks& hooks);

  Kernel& kernel;
  Clock& clock;
  Transport& transport;
  EngineOptions options;
  MigrationPolicy policy;
  Estimator estimator;

  std::vector<GuestRegion> regions;
  struct Source {
    DirtySource* source;
    SourceKind kind;
  };
  std::vector<Source> sources;
  std::vector<std::unique_ptr<DeviceSession>> devices;

  EnginePhase phase = EnginePhase::kConfiguring;
  std::unique_ptr<StreamWriter> writer;
  std::unique_ptr<RamChannel> own_channel;
  RamChannel* channel = nullptr;
  std::unique_ptr<DirtyRam> ram;
  std::unique_ptr<DeviceDrain> precopy_drain;  // PRE_COPY devices

  uint64_t start_ns = 0;
  uint64_t iterations = 0;
  uint64_t last_sync_ns = 0;
  uint64_t last_sync_duration_ns = 0;
  uint64_t last_dirtied_pages = 0;
  uint64_t total_ram_pages = 0;
  uint64_t total_device_bytes = 0;
  // The decision remembered by ShouldSwitchover().
  std::optional<Estimate> decided;
  std::string decided_reason;
  std::array<uint64_t, kNumFixedCosts> fixed_ns{};
};

}  // namespace converge

#endif  // CONVERGE_ENGINE_PRECOPY_ENGINE_REP_H_
