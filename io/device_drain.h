// DeviceDrain: reads many devices' data_fds at once through one io_uring,
// one read in flight per device (so a device's bytes never reorder), and
// hands out completed chunks in per-device order.
//
// Each device's reads fill a chunk buffer (several short reads are merged
// until it is full, the device ends, or it has nothing now), then the chunk
// is handed out with the device's next sequence number. Buffers come from a
// fixed pool (registered with the ring when RLIMIT_MEMLOCK allows), so
// memory is bounded; a device waits for a buffer when the consumer holds
// them all.
//
// In PRE_COPY a read must not wait for data: reads carry RWF_NOWAIT (io_uring
// otherwise waits on a pollable fd even if it is O_NONBLOCK).
//
// Thread-safety: Next(), Rearm(), RefreshPrecopyInfo() and EnterStopCopy()
// from one thread (the consumer's input side); Release() from
// any thread.

#ifndef CONVERGE_IO_DEVICE_DRAIN_H_
#define CONVERGE_IO_DEVICE_DRAIN_H_

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "io/data_fd_reader.h"
#include "io/uring.h"
#include "iommu/kernel.h"

namespace converge {

struct DrainDevice {
  uint32_t device_id = 0;
  int data_fd = -1;  // not owned
  std::string name;
};

struct DeviceDrainOptions {
  // Bytes per chunk buffer. Each device holds one in a read; QEMU reads
  // 1 MiB at a time.
  size_t chunk_bytes = 1 << 20;
  // Pool size per device: one in a read, the rest with the consumer
  // (compression, sending). Memory = devices * buffers_per_device *
  // chunk_bytes.
  unsigned buffers_per_device = 4;
  // Merge short reads until a buffer is full (fewer, larger chunks).
  bool fill_chunks = true;
  // Register the pool with the ring (READ_FIXED) when RLIMIT_MEMLOCK
  // allows; falls back to plain reads otherwise.
  bool register_buffers = true;
};

// A chunk of one device's stream. Give it back with Release().
struct DrainChunk {
  uint32_t device_id = 0;
  uint64_t sequence = 0;
  std::span<const uint8_t> bytes;
  int buffer = -1;
};

class DeviceDrain {
 public:
  // REQUIRES: devices have distinct ids and valid fds.
  [[nodiscard]] static Result<std::unique_ptr<DeviceDrain>> Create(
      std::span<const DrainDevice> devices, DataPhase phase,
      const DeviceDrainOptions& options = {});

  DeviceDrain(const DeviceDrain&) = delete;
  DeviceDrain& operator=(const DeviceDrain&) = delete;
  ~DeviceDrain();

  // The next chunk of some device, waiting for a read if needed; nullopt
  // when every device has ended (STOP_COPY) or has nothing now (PRE_COPY).
  [[nodiscard]] Result<std::optional<DrainChunk>> Next();
  // Returns a chunk's buffer to the pool. Safe from any thread.
  void Release(const DrainChunk& chunk);
  // PRE_COPY: devices that had nothing are read again (call after
  // PRECOPY_INFO reports more data).
  void Rearm();
  // PRE_COPY: VFIO_MIG_GET_PRECOPY_INFO on every device not ended,
  // through the seam (a driver such as mlx5 only makes progress when
  // asked), re-arming the idle ones that report bytes to read. Returns each
  // device's info in the order given to Create() (zeros for ended ones).
  [[nodiscard]] Result<std::vector<PrecopyInfo>> RefreshPrecopyInfo(
      Kernel& kernel);
  // PRE_COPY -> STOP_COPY on the same fds: idle devices are read again and
  // 0 now means the end.
  void EnterStopCopy();

  bool registered_buffers() const { return registered_; }
  uint64_t bytes_read(uint32_t device_id) const;
  bool ended(uint32_t device_id) const;

 private:
  enum class State : uint8_t { kNeedRead, kReading, kIdle, kEnded };
  struct Device {
    DrainDevice spec;
    State state = State::kNeedRead;
    int buffer = -1;
    size_t fill = 0;
    uint64_t sequence = 0;
    uint64_t bytes = 0;
    // PRE_COPY reads use RWF_NOWAIT so a pollable fd with nothing in it
    // answers EAGAIN instead of waiting; a file that cannot do that
    // (EOPNOTSUPP) is read plainly and its driver answers 0 or ENOMSG.
    bool nowait = true;
  };

  DeviceDrain(DataPhase phase, const DeviceDrainOptions& options);
  // Starts a read on every device that needs one and has a buffer.
  Status StartReads();
  Status SubmitRead(size_t index);
  Status Complete(size_t index, int result);
  void EmitChunk(Device& d);
  int TakeBuffer();

  DataPhase phase_;
  DeviceDrainOptions options_;
  std::unique_ptr<Uring> ring_;
  std::vector<Device> devices_;
  std::vector<std::unique_ptr<uint8_t[]>> pool_;
  bool registered_ = false;
  unsigned in_flight_ = 0;
  std::deque<DrainChunk> ready_;

  std::mutex mu_;
  std::condition_variable released_;
  std::vector<int> free_;  // guarded by mu_
};

}  // namespace converge

#endif  // CONVERGE_IO_DEVICE_DRAIN_H_
