// Transport: where a migration stream goes (and comes from), so the engine
// does not care whether it is a TCP socket, a file or memory.
//
// Write() may return before the bytes reach the kernel (write-behind), but
// the amount buffered is bounded: a slow peer makes Write() wait. Flush()
// waits until every byte written so far is handed to the kernel.
//
// Thread-safety: none. One thread writes (or reads) a transport at a time.

#ifndef CONVERGE_IO_TRANSPORT_H_
#define CONVERGE_IO_TRANSPORT_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "base/status.h"

namespace converge {

class Transport {
 public:
  Transport() = default;
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;
  virtual ~Transport() = default;

  // Queues bytes to send, in order; blocks while the buffer limit is hit.
  virtual Status Write(std::span<const uint8_t> bytes) = 0;
  // Reads up to buf.size() bytes; returns 0 only at the end of the stream.
  virtual Result<size_t> Read(std::span<uint8_t> buf) = 0;
  // Waits until every byte written so far has been taken by the kernel.
  virtual Status Flush() = 0;
  // Flushes and closes; later calls fail.
  virtual Status Close() = 0;

  uint64_t bytes_written() const { return bytes_written_; }
  uint64_t bytes_read() const { return bytes_read_; }

 protected:
  uint64_t bytes_written_ = 0;
  uint64_t bytes_read_ = 0;
};

// Reads until buf is full or the stream ends; returns the bytes read
// (fewer than buf.size() only at the end of the stream).
[[nodiscard]] Result<size_t> ReadFull(Transport& transport,
                                      std::span<uint8_t> buf);

// A Transport over memory: writes append to data(); reads consume the
// bytes given at construction (or, if none, what was written).
class MemoryTransport final : public Transport {
 public:
  MemoryTransport() = default;
  explicit MemoryTransport(std::span<const uint8_t> input) : input_(input) {}

  Status Write(std::span<const uint8_t> bytes) override;
  Result<size_t> Read(std::span<uint8_t> buf) override;
  Status Flush() override { return OkStatus(); }
  Status Close() override;

  const std::vector<uint8_t>& data() const { return data_; }

 private:
  std::span<const uint8_t> input_;
  bool has_input_ = !input_.empty();
  size_t read_pos_ = 0;
  bool closed_ = false;
  std::vector<uint8_t> data_;
};

}  // namespace converge

#endif  // CONVERGE_IO_TRANSPORT_H_
