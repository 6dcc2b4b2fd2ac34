// Reading a VFIO device's migration data_fd (shared/uapi.md section 1).
//
// The stream is opaque and its byte order must be kept exactly. In PRE_COPY
// a read of 0, ENOMSG or EAGAIN means "nothing now, ask again after
// PRECOPY_INFO"; in STOP_COPY 0 is the permanent end (ENOMSG is not allowed
// there). Short reads are normal; EINTR is retried; ENODEV and EIO are
// errors naming the device.
//
// DataFdReader is the synchronous reader (QEMU's way: one blocking read()
// of up to chunk_bytes through the Kernel seam per call). DeviceDrain
// (device_drain.h) reads many devices at once through io_uring.

#ifndef CONVERGE_IO_DATA_FD_READER_H_
#define CONVERGE_IO_DATA_FD_READER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/byte_buffer.h"
#include "base/status.h"
#include "iommu/kernel.h"

namespace converge {

enum class DataPhase : uint8_t {
  kPreCopy,   // PRE_COPY / PRE_COPY_P2P: empty is temporary
  kStopCopy,  // STOP_COPY: 0 is the end of the device state
};

enum class ReadOutcome : uint8_t {
  kData,       // bytes were read
  kNothingNow, // PRE_COPY (or a non-blocking fd): ask again later
  kEnd,        // STOP_COPY: the device state is complete
};

// Classifies one read() result of a data_fd: bytes >= 0 or -errno.
// EINTR is kInterrupted (the caller retries); ENODEV, EIO and the rest are
// errors whose message names device.
[[nodiscard]] Result<ReadOutcome> ClassifyDataFdRead(DataPhase phase,
                                                     long result,
                                                     std::string_view device);

struct PrecopyInfo {
  uint64_t initial_bytes = 0;
  uint64_t dirty_bytes = 0;
};

// VFIO_MIG_GET_PRECOPY_INFO on data_fd through the Kernel seam.
[[nodiscard]] Result<PrecopyInfo> QueryPrecopyInfo(Kernel& kernel, int data_fd,
                                                   std::string_view device);

struct DataFdReaderOptions {
  // Largest read() per call; QEMU uses 1 MiB. Bigger chunks compress a
  // little better and cost that much memory per device.
  size_t chunk_bytes = 1 << 20;
};

// Reads one device's data_fd into ordered chunks (sequence 0, 1, 2, ...).
//
// Thread-safety: none; one thread at a time. Does not own data_fd.
class DataFdReader {
 public:
  DataFdReader(Kernel& kernel, int data_fd, uint32_t device_id,
               std::string name, const DataFdReaderOptions& options = {});
  DataFdReader(const DataFdReader&) = delete;
  DataFdReader& operator=(const DataFdReader&) = delete;

  // PRE_COPY -> STOP_COPY keeps the same fd; tell the reader.
  void set_phase(DataPhase phase) { phase_ = phase; }
  DataPhase phase() const { return phase_; }

  // One read() of up to chunk_bytes into chunk (resized to the bytes read;
  // growing it does not zero-fill). On kData, *sequence is the chunk's
  // sequence number.
  // REQUIRES: !ended().
  [[nodiscard]] Result<ReadOutcome> Read(ByteBuffer& chunk, uint64_t* sequence);
  [[nodiscard]] Result<PrecopyInfo> QueryPrecopyInfo();

  uint32_t device_id() const { return device_id_; }
  const std::string& name() const { return name_; }
  bool ended() const { return ended_; }
  uint64_t bytes_read() const { return bytes_read_; }
  uint64_t chunks_read() const { return next_sequence_; }

 private:
  Kernel& kernel_;
  int fd_;
  uint32_t device_id_;
  std::string name_;
  DataFdReaderOptions options_;
  DataPhase phase_ = DataPhase::kStopCopy;
  bool ended_ = false;
  uint64_t bytes_read_ = 0;
  uint64_t next_sequence_ = 0;
};

}  // namespace converge

#endif  // CONVERGE_IO_DATA_FD_READER_H_
