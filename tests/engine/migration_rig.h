// MigrationRig: a real micro-VM (KVM dirty log with manual protect, or the
// dirty ring) and emulated PRE_COPY devices on the source, destination RAM
// and devices on the other side, and helpers to run a whole migration
// through PrecopyEngine and Destination and verify it byte for byte.

#ifndef CONVERGE_TESTS_ENGINE_MIGRATION_RIG_H_
#define CONVERGE_TESTS_ENGINE_MIGRATION_RIG_H_

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "engine/destination.h"
#include "engine/precopy_engine.h"
#include "io/transport.h"
#include "iommu/dirty_source.h"
#include "sim/emulated_kernel.h"
#include "sim/vfio_device.h"
#include "vm/micro_vm.h"

namespace converge::testing {

struct RigOptions {
  uint64_t ram_bytes = uint64_t{64} << 20;
  bool dirty_ring = false;   // KVM dirty ring instead of the dirty log
  int num_devices = 2;
  sim::VfioDeviceOptions device;  // sizes reduced by the rig's defaults
  WorkloadSpec workload;
  RamFillOptions fill;  // the guest RAM's content mix
};

// What one migration gave.
struct MigrationOutcome {
  SwitchoverStats switchover;
  Estimate decided;  // the estimate when the switchover was decided
  DestinationResult destination;
  double measured_downtime_ms = 0;  // vCPU pause to destination ready
  uint64_t iterations = 0;
  // The engine's measured fixed costs (FixedCost order), destination apply
  // included for TCP runs.
  std::array<uint64_t, kNumFixedCosts> fixed_ns{};
  bool verified = false;  // RAM equal and every device restored
  std::string mismatch;   // why not, if not
};

// A DirtySource that forwards to another and remembers whether it is
// tracking (to check that Cancel stopped logging).
class WatchedSource final : public DirtySource {
 public:
  explicit WatchedSource(DirtySource& inner) : inner_(inner) {}
  std::string_view name() const override { return inner_.name(); }
  Status Start(std::span<const GpaRange> ranges, uint64_t page) override {
    Status s = inner_.Start(ranges, page);
    started_ = s.ok();
    return s;
  }
  Status Harvest(uint64_t gpa, uint64_t n, DirtyBitmap& out,
                 uint64_t first) override {
    return inner_.Harvest(gpa, n, out, first);
  }
  Status Rearm(uint64_t gpa, uint64_t n) override {
    return inner_.Rearm(gpa, n);
  }
  Status Stop() override {
    started_ = false;
    return inner_.Stop();
  }
  DirtySourceLimits limits() const override { return inner_.limits(); }
  bool started() const { return started_; }

 private:
  DirtySource& inner_;
  bool started_ = false;
};

class MigrationRig {
 public:
  // Creates and starts the VM (workload running) and the devices.
  static Result<std::unique_ptr<MigrationRig>> Create(const RigOptions& o);
  ~MigrationRig();

  // An engine over this VM and its devices, configured but not started.
  Result<std::unique_ptr<PrecopyEngine>> NewEngine(Transport& transport,
                                                   EngineOptions options);
  // The same, with the engine's kernel calls going through `kernel` (e.g.
  // a sim::FaultKernel over kernel()) and RAM tracked by `sources` instead
  // of source() when not empty.
  Result<std::unique_ptr<PrecopyEngine>> NewEngine(
      Kernel& kernel, Transport& transport, EngineOptions options,
      const std::vector<std::pair<DirtySource*, SourceKind>>& sources);
  // Source loop: Start, then Sync/ShouldSwitchover/Iterate until the policy
  // says switch over, then Switchover (pausing the vCPU).
  Result<SwitchoverStats> RunSource(PrecopyEngine& engine);
  // Fresh destination devices and RAM, and a Destination reading transport.
  Result<std::unique_ptr<Destination>> NewDestination(Transport& transport);
  // Compares RAM and device state; resumes the VM afterwards.
  bool Verify(std::string* mismatch) const;

  // A whole migration through a MemoryTransport (the destination runs
  // after the source) or loopback TCP (it runs concurrently).
  Result<MigrationOutcome> MigrateInMemory(EngineOptions options);
  Result<MigrationOutcome> MigrateOverTcp(EngineOptions options);
  // A whole migration over a connected pair of transports: the source
  // writes `send` on this thread while a destination reads `receive` on
  // another. A failure returns the source's error if it failed, else the
  // destination's; send is closed either way. If engine_out is set it gets
  // the engine (to Cancel and inspect after a failure).
  Result<MigrationOutcome> MigrateOver(
      Transport& send, Transport& receive, EngineOptions options,
      std::unique_ptr<PrecopyEngine>* engine_out = nullptr);

  MicroVm& vm() { return *vm_; }
  WatchedSource& source() { return *watched_; }
  sim::EmulatedKernel& kernel() { return emulated_; }
  sim::EmulatedVfioDevice& source_device(int i) { return *src_devices_[i]; }
  // Of the last NewDestination().
  sim::EmulatedVfioDevice& destination_device(int i) {
    return *dst_devices_[i];
  }
  Clock& clock() { return Clock::Monotonic(); }

 private:
  MigrationRig() = default;
  Result<MigrationOutcome> Finish(PrecopyEngine& engine,
                                  const SwitchoverStats& s,
                                  const DestinationResult& d);

  RigOptions options_;
  Estimate decided_;  // of the last RunSource()
  sim::EmulatedKernel emulated_;
  std::unique_ptr<MicroVm> vm_;
  std::unique_ptr<DirtySource> kvm_source_;
  std::unique_ptr<WatchedSource> watched_;
  std::vector<std::shared_ptr<sim::EmulatedVfioDevice>> src_devices_;
  std::vector<int> src_fds_;
  std::vector<std::shared_ptr<sim::EmulatedVfioDevice>> dst_devices_;
  std::vector<int> dst_fds_;
  uint8_t* dst_ram_ = nullptr;
};

// MigrationRig::Create, or null after a test failure saying why.
std::unique_ptr<MigrationRig> NewRig(const RigOptions& options);

}  // namespace converge::testing

#endif  // CONVERGE_TESTS_ENGINE_MIGRATION_RIG_H_
