// Receiver: the destination side of a migration stream. Reads records from
// a Transport through a StreamReader (which verifies each one completely
// first), applies RAM pages into destination memory and device bytes, in
// order, into each device's RESUMING data_fd, and checks the end-of-device
// and end-of-stream totals.
//
// Nothing from a record is applied before the whole record has verified;
// on the first bad record Run() stops and returns the error, with every
// earlier record applied and nothing after it.
//
// Thread-safety: Run() blocks its thread; one Receiver per stream.

#ifndef CONVERGE_IO_RECEIVER_H_
#define CONVERGE_IO_RECEIVER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <vector>

#include "base/status.h"
#include "io/guest_memory.h"
#include "io/stream_reader.h"
#include "io/transport.h"
#include "iommu/kernel.h"

namespace converge {

// Where device bytes go. The engine maps device ids to RESUMING data_fds.
class DeviceSink {
 public:
  virtual ~DeviceSink() = default;
  // True when the sink can take device_id's bytes.
  virtual bool HasDevice(uint32_t device_id) const = 0;
  // Writes all of bytes, in order, to device_id.
  virtual Status WriteDeviceBytes(uint32_t device_id,
                                  std::span<const uint8_t> bytes) = 0;
};

// A DeviceSink writing to data_fds through the Kernel seam (short writes
// continued). Does not own the fds.
// Thread-safety: none.
class KernelDeviceSink final : public DeviceSink {
 public:
  explicit KernelDeviceSink(Kernel& kernel) : kernel_(kernel) {}
  void AddDevice(uint32_t device_id, int data_fd) { fds_[device_id] = data_fd; }
  bool HasDevice(uint32_t device_id) const override {
    return fds_.count(device_id) != 0;
  }
  Status WriteDeviceBytes(uint32_t device_id,
                          std::span<const uint8_t> bytes) override;

 private:
  Kernel& kernel_;
  std::map<uint32_t, int> fds_;
};

struct ReceiveSummary {
  uint64_t records = 0;
  uint64_t ram_pages = 0;
  uint64_t zero_pages = 0;
  uint64_t stream_bytes = 0;
  uint64_t last_iteration = 0;
  std::map<uint32_t, uint64_t> device_bytes;
  bool complete = false;  // end-of-stream verified
  Status error;           // why Run() stopped early, if it did
};

struct ReceiverOptions {
  // Called after every progress_every_records records (and at the end)
  // with the summary so far. Runs on Run()'s thread.
  std::function<void(const ReceiveSummary&)> progress;
  uint64_t progress_every_records = 256;
};

class Receiver {
 public:
  // regions[i] receives stream region i; their GPA and size must equal the
  // stream header's.
  Receiver(Transport& transport, std::vector<GuestRegion> regions,
           DeviceSink& devices, ReceiverOptions options = {});
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;

  // Receives the whole stream. On error, summary() says how far it got.
  [[nodiscard]] Result<ReceiveSummary> Run();
  const ReceiveSummary& summary() const { return summary_; }

 private:
  Status CheckLayout(const StreamLayout& layout) const;
  Status Apply(const StreamRecord& record, uint32_t page_size);
  Status RunStream();

  Transport& transport_;
  std::vector<GuestRegion> regions_;
  DeviceSink& devices_;
  ReceiverOptions options_;
  ReceiveSummary summary_;
};

}  // namespace converge

#endif  // CONVERGE_IO_RECEIVER_H_
