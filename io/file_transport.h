// FileTransport: a migration stream in a file (or any fd, such as
// /dev/null), written and read through io_uring (UringStream) with bounded
// write-behind.
//
// Thread-safety: none; one thread at a time.

#ifndef CONVERGE_IO_FILE_TRANSPORT_H_
#define CONVERGE_IO_FILE_TRANSPORT_H_

#include <memory>
#include <string>

#include "base/status.h"
#include "io/transport.h"
#include "io/uring_stream.h"

namespace converge {

class FileTransport final : public Transport {
 public:
  // Creates (or truncates) path for writing.
  [[nodiscard]] static Result<std::unique_ptr<FileTransport>> Create(
      const std::string& path, const UringStreamOptions& options = {});
  // Opens path for reading from its start.
  [[nodiscard]] static Result<std::unique_ptr<FileTransport>> Open(
      const std::string& path, const UringStreamOptions& options = {});

  ~FileTransport() override;

  Status Write(std::span<const uint8_t> bytes) override;
  Result<size_t> Read(std::span<uint8_t> buf) override;
  Status Flush() override;
  Status Close() override;

  const UringStream& stream() const { return *stream_; }

 private:
  FileTransport(int fd, std::unique_ptr<UringStream> stream)
      : fd_(fd), stream_(std::move(stream)) {}
  static Result<std::unique_ptr<FileTransport>> OpenWith(
      const std::string& path, int flags, const UringStreamOptions& options);

  int fd_;
  std::unique_ptr<UringStream> stream_;
};

}  // namespace converge

#endif  // CONVERGE_IO_FILE_TRANSPORT_H_
