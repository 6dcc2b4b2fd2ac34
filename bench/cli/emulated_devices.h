// EmulatedDevices: the emulated PRE_COPY VFIO devices of a converge-bench
// migration, installed in an EmulatedKernel, with their device fds; and
// the content check that says whether a destination restored each one.
//
// Thread-safety: as EmulatedVfioDevice (every method from any thread); the
// set itself is built and read by one thread.

#ifndef CONVERGE_BENCH_CLI_EMULATED_DEVICES_H_
#define CONVERGE_BENCH_CLI_EMULATED_DEVICES_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "bench/cli/migration_config.h"
#include "iommu/kernel.h"
#include "sim/emulated_kernel.h"
#include "sim/vfio_device.h"

namespace converge::bench {

class EmulatedDevices {
 public:
  // config.devices devices whose state is config.device_state_mib: all of
  // it published as initial precopy data, rewritten at
  // config.device_dirty_mibps while running, and a sixteenth of it
  // written again at STOP_COPY. clock_ns empty = steady clock (the model
  // passes its virtual clock).
  EmulatedDevices(sim::EmulatedKernel& kernel, const MigrationConfig& config,
                  std::function<uint64_t()> clock_ns = {});
  EmulatedDevices(const EmulatedDevices&) = delete;
  EmulatedDevices& operator=(const EmulatedDevices&) = delete;
  ~EmulatedDevices() = default;  // closes the device fds

  size_t size() const { return devices_.size(); }
  int fd(size_t i) const { return fds_[i].get(); }
  std::string name(size_t i) const { return "dev" + std::to_string(i); }
  sim::EmulatedVfioDevice& device(size_t i) const { return *devices_[i]; }

 private:
  std::vector<std::shared_ptr<sim::EmulatedVfioDevice>> devices_;
  std::vector<KernelFd> fds_;
};

// OK when every destination device restored exactly the bytes its source
// device streamed (completed stream, intact restore, same payload length
// and XXH3); otherwise an error naming the first device that differs and how.
// REQUIRES: source.size() == destination.size().
[[nodiscard]] Status CompareDeviceState(const EmulatedDevices& source,
                                        const EmulatedDevices& destination);

}  // namespace converge::bench

#endif  // CONVERGE_BENCH_CLI_EMULATED_DEVICES_H_
