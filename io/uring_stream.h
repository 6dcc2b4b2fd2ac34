// UringStream: ordered write-behind and reads on one fd through io_uring,
// with bounded memory. The engine of SocketTransport and FileTransport.
//
// Writes are copied into one of max_buffers buffers of buffer_bytes; a full
// buffer is submitted at once, and Write() returns while it is in flight.
// When every buffer is full or in flight, Write() waits for a completion:
// a slow reader slows the writer and memory stays at
// max_buffers * buffer_bytes. A write of buffer_bytes or more is not
// copied: it goes to the kernel from the caller's memory after everything
// before it, and Write() returns once the kernel has taken all of it. On a stream fd (socket, pipe) one write is in
// flight at a time, so bytes never reorder; on a seekable file each buffer
// has its own offset and up to max_in_flight run at once.
//
// Thread-safety: none; one thread at a time.

#ifndef CONVERGE_IO_URING_STREAM_H_
#define CONVERGE_IO_URING_STREAM_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "io/uring.h"

namespace converge {

struct UringStreamOptions {
  // Size of each write buffer. Larger buffers mean fewer system calls.
  size_t buffer_bytes = 1 << 20;
  // Buffers (filling, queued or in flight). Bounds memory at
  // max_buffers * buffer_bytes.
  unsigned max_buffers = 8;
  // Writes in flight at once on a seekable file (a stream fd always uses 1).
  unsigned max_in_flight = 4;
};

class UringStream {
 public:
  // Takes no ownership of fd. seekable: fd is a regular file written from
  // offset 0 (reads also from offset 0); otherwise a stream.
  [[nodiscard]] static Result<std::unique_ptr<UringStream>> Create(
      int fd, bool seekable, std::string name,
      const UringStreamOptions& options = {});

  UringStream(const UringStream&) = delete;
  UringStream& operator=(const UringStream&) = delete;
  ~UringStream();

  Status Write(std::span<const uint8_t> bytes);
  // Reads up to buf.size() bytes (0 = end of stream).
  Result<size_t> Read(std::span<uint8_t> buf);
  // Waits until every written byte has been accepted by the kernel.
  Status Flush();

  // Peak bytes held in buffers, for tests of the memory bound.
  size_t peak_buffered_bytes() const { return peak_buffered_bytes_; }

 private:
  struct Buffer {
    std::vector<uint8_t> data;
    size_t filled = 0;  // bytes written into data
    size_t done = 0;    // bytes the kernel has taken
    uint64_t offset = 0;
  };

  UringStream(int fd, bool seekable, std::string name,
              const UringStreamOptions& options);
  // Moves the filling buffer to the submit queue.
  void QueueCurrent();
  // Submits queued buffers up to the in-flight limit.
  Status Pump();
  // Reaps one completion (waiting for it).
  Status ReapOne();
  // A large write straight from the caller's memory (see the top).
  Status WriteDirect(std::span<const uint8_t> bytes);
  Status SubmitBuffer(int index);

  int fd_;
  bool seekable_;
  std::string name_;
  UringStreamOptions options_;
  std::unique_ptr<Uring> ring_;
  std::vector<Buffer> buffers_;
  std::vector<int> free_;
  std::deque<int> queued_;
  int current_ = -1;
  unsigned in_flight_ = 0;
  uint64_t write_offset_ = 0;
  uint64_t read_offset_ = 0;
  size_t peak_buffered_bytes_ = 0;
  Status error_;  // sticky: a failed write poisons the stream
};

}  // namespace converge

#endif  // CONVERGE_IO_URING_STREAM_H_
