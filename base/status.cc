#include "base/status.h"

#include <cstring>

namespace converge {

std::string_view StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "OK";
    case StatusCode::kInvalidArgument: return "InvalidArgument";
    case StatusCode::kOutOfRange: return "OutOfRange";
    case StatusCode::kNotSupported: return "NotSupported";
    case StatusCode::kFailedPrecondition: return "FailedPrecondition";
    case StatusCode::kResourceExhausted: return "ResourceExhausted";
    case StatusCode::kUnavailable: return "Unavailable";
    case StatusCode::kInterrupted: return "Interrupted";
    case StatusCode::kIoError: return "IoError";
    case StatusCode::kCorrupt: return "Corrupt";
    case StatusCode::kCancelled: return "Cancelled";
    case StatusCode::kInternal: return "Internal";
  }
  return "Unknown";
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string s(StatusCodeName(code_));
  s += ": ";
  s += message_;
  return s;
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  std::string m(context);
  m += ": ";
  m += message_;
  return Status(code_, std::move(m), sys_errno_);
}

Status InvalidArgumentError(std::string m) {
  return Status(StatusCode::kInvalidArgument, std::move(m));
}
Status OutOfRangeError(std::string m) {
  return Status(StatusCode::kOutOfRange, std::move(m));
}
Status NotSupportedError(std::string m) {
  return Status(StatusCode::kNotSupported, std::move(m));
}
Status FailedPreconditionError(std::string m) {
  return Status(StatusCode::kFailedPrecondition, std::move(m));
}
Status ResourceExhaustedError(std::string m) {
  return Status(StatusCode::kResourceExhausted, std::move(m));
}
Status UnavailableError(std::string m) {
  return Status(StatusCode::kUnavailable, std::move(m));
}
Status IoError(std::string m) { return Status(StatusCode::kIoError, std::move(m)); }
Status CorruptError(std::string m) {
  return Status(StatusCode::kCorrupt, std::move(m));
}
Status CancelledError(std::string m) {
  return Status(StatusCode::kCancelled, std::move(m));
}
Status InternalError(std::string m) {
  return Status(StatusCode::kInternal, std::move(m));
}

namespace {

StatusCode CodeForErrno(int e) {
  switch (e) {
    case 0: return StatusCode::kInternal;  // a failure that set no errno
    case EINVAL: case EBADF: case EFAULT: case EOVERFLOW: case ESPIPE:
    case ENAMETOOLONG:
      return StatusCode::kInvalidArgument;
    case ERANGE: case EDOM: return StatusCode::kOutOfRange;
    case ENOTTY: case ENOSYS: case EOPNOTSUPP: case ENOENT: case ENXIO:
      return StatusCode::kNotSupported;
    case EBUSY: case EEXIST: case EPERM: case EACCES: case EALREADY:
    case ENOTCONN: case EISCONN:
      return StatusCode::kFailedPrecondition;
    case ENOMEM: case ENOSPC: case E2BIG: case EMFILE: case ENFILE:
    case EDQUOT: case ENOBUFS:
      return StatusCode::kResourceExhausted;
    case EAGAIN: case ENOMSG: return StatusCode::kUnavailable;
    case EINTR: return StatusCode::kInterrupted;
    case ECANCELED: return StatusCode::kCancelled;
    case EBADMSG: case EILSEQ: return StatusCode::kCorrupt;
    default: return StatusCode::kIoError;  // EIO, ENODEV, EPIPE, ECONNRESET...
  }
}

}  // namespace

Status ErrnoStatus(int sys_errno, std::string_view what) {
  char buf[128];
  // GNU strerror_r returns a pointer that may or may not be buf.
  const char* text = strerror_r(sys_errno, buf, sizeof buf);
  std::string m(what);
  m += ": ";
  m += text;
  m += " (errno ";
  m += std::to_string(sys_errno);
  m += ")";
  return Status(CodeForErrno(sys_errno), std::move(m), sys_errno);
}

}  // namespace converge
