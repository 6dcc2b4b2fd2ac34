#include "io/file_transport.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace converge {

Result<std::unique_ptr<FileTransport>> FileTransport::OpenWith(
    const std::string& path, int flags, const UringStreamOptions& options) {
  CONVERGE_ASSIGN_OR_RETURN(long fd, RetryOnEintr([&] {
    return SysCall("open " + path,
                   [&] { return ::open(path.c_str(), flags | O_CLOEXEC, 0644); });
  }));
  struct stat st {};
  bool seekable = false;
  if (::fstat(static_cast<int>(fd), &st) == 0) seekable = S_ISREG(st.st_mode);
  auto stream =
      UringStream::Create(static_cast<int>(fd), seekable, path, options);
  if (!stream.ok()) {
    ::close(static_cast<int>(fd));
    return stream.status();
  }
  return std::unique_ptr<FileTransport>(
      new FileTransport(static_cast<int>(fd), std::move(stream).value()));
}

Result<std::unique_ptr<FileTransport>> FileTransport::Create(
    const std::string& path, const UringStreamOptions& options) {
  return OpenWith(path, O_WRONLY | O_CREAT | O_TRUNC, options);
}

Result<std::unique_ptr<FileTransport>> FileTransport::Open(
    const std::string& path, const UringStreamOptions& options) {
  return OpenWith(path, O_RDONLY, options);
}

FileTransport::~FileTransport() {
  if (fd_ >= 0) (void)Close();
}

Status FileTransport::Write(std::span<const uint8_t> bytes) {
  if (fd_ < 0) return FailedPreconditionError("write to a closed file");
  CONVERGE_RETURN_IF_ERROR(stream_->Write(bytes));
  bytes_written_ += bytes.size();
  return OkStatus();
}

Result<size_t> FileTransport::Read(std::span<uint8_t> buf) {
  if (fd_ < 0) return FailedPreconditionError("read from a closed file");
  CONVERGE_ASSIGN_OR_RETURN(size_t n, stream_->Read(buf));
  bytes_read_ += n;
  return n;
}

Status FileTransport::Flush() {
  if (fd_ < 0) return FailedPreconditionError("flush of a closed file");
  return stream_->Flush();
}

Status FileTransport::Close() {
  if (fd_ < 0) return OkStatus();
  Status flushed = stream_->Flush();
  stream_.reset();
  Result<long> closed = SysCall("close file", [&] { return ::close(fd_); });
  fd_ = -1;
  if (!flushed.ok()) return flushed;
  return closed.status();
}

}  // namespace converge
