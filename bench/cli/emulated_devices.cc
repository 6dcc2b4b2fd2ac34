#include "bench/cli/emulated_devices.h"

#include <cassert>
#include <cinttypes>
#include <cstdio>

#include "sim/vfio_device_stream.h"

namespace converge::bench {

EmulatedDevices::EmulatedDevices(sim::EmulatedKernel& kernel,
                                 const MigrationConfig& config,
                                 std::function<uint64_t()> clock_ns) {
  const uint64_t state_bytes = config.device_state_mib << 20;
  for (uint64_t i = 0; i < config.devices; ++i) {
    sim::VfioDeviceOptions o;
    o.precopy_initial_bytes = state_bytes;
    o.max_dirty_bytes = state_bytes;
    o.dirty_bytes_per_sec =
        static_cast<uint64_t>(config.device_dirty_mibps * (1 << 20));
    o.stop_copy_bytes = state_bytes / 16;
    o.seed = i + 1;
    o.clock_ns = clock_ns;
    devices_.push_back(sim::EmulatedVfioDevice::Create(kernel, o));
    fds_.emplace_back(kernel, kernel.Install(devices_.back()));
  }
}

Status CompareDeviceState(const EmulatedDevices& source,
                          const EmulatedDevices& destination) {
  assert(source.size() == destination.size());
  for (size_t i = 0; i < source.size(); ++i) {
    const sim::EmulatedVfioDevice& src = source.device(i);
    const sim::EmulatedVfioDevice& dst = destination.device(i);
    const std::string name = source.name(i);
    if (!src.stream_complete()) {
      return CorruptError(name + ": the source never finished its stream");
    }
    if (!dst.restored_ok()) {
      return CorruptError(name + ": the destination did not restore an "
                                 "intact stream");
    }
    // The destination counts the trailer it verified; the source does not.
    const uint64_t restored_payload =
        dst.restored_bytes() - sim::StreamTrailer::kBytes;
    if (restored_payload != src.stream_bytes() ||
        dst.restored_hash() != src.stream_hash()) {
      char buf[200];
      snprintf(buf, sizeof buf,
               "restored %" PRIu64 " bytes with XXH3 %016" PRIx64
               ", the source streamed %" PRIu64 " bytes with XXH3 %016" PRIx64,
               restored_payload, dst.restored_hash(), src.stream_bytes(),
               src.stream_hash());
      return CorruptError(name + ": " + buf);
    }
  }
  return OkStatus();
}

}  // namespace converge::bench
