// Status and Result<T>: the one error type of converge.
//
// No exceptions cross the public API. A Status is a code, a message naming
// what failed, and (when the error came from the kernel) the errno it came
// from. errno becomes a Status in exactly one place, ErrnoStatus(), and
// RetryOnEintr() is the one loop that retries interrupted system calls.
//
// Thread-safety: Status and Result are values; distinct objects may be used
// from distinct threads without synchronization.

#ifndef CONVERGE_BASE_STATUS_H_
#define CONVERGE_BASE_STATUS_H_

#include <cassert>
#include <cerrno>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace converge {

enum class StatusCode : uint8_t {
  kOk = 0,
  kInvalidArgument,     // the caller passed something malformed
  kOutOfRange,          // an index or range past the end
  kNotSupported,        // the kernel or device lacks the feature
  kFailedPrecondition,  // the object is in the wrong state for the call
  kResourceExhausted,   // memory, locked memory, ring or disk space
  kUnavailable,         // nothing now; try again (EAGAIN, ENOMSG)
  kInterrupted,         // EINTR; RetryOnEintr() loops on it
  kIoError,             // the device or file failed (EIO, ENODEV, ...)
  kCorrupt,             // a stream or record failed verification
  kCancelled,           // stopped on request
  kInternal,            // a broken invariant
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message, int sys_errno = 0)
      : code_(code), sys_errno_(sys_errno), message_(std::move(message)) {}

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  // The errno this error was built from, or 0.
  int sys_errno() const { return sys_errno_; }
  const std::string& message() const { return message_; }
  // "IoError: read data_fd of device 0: Input/output error (errno 5)".
  std::string ToString() const;

  // Returns this status with "context: " put before the message.
  Status WithContext(std::string_view context) const;

  friend bool operator==(const Status& a, const Status& b) {
    return a.code_ == b.code_ && a.sys_errno_ == b.sys_errno_ &&
           a.message_ == b.message_;
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  int sys_errno_ = 0;
  std::string message_;
};

inline Status OkStatus() { return Status(); }
[[nodiscard]] Status InvalidArgumentError(std::string message);
[[nodiscard]] Status OutOfRangeError(std::string message);
[[nodiscard]] Status NotSupportedError(std::string message);
[[nodiscard]] Status FailedPreconditionError(std::string message);
[[nodiscard]] Status ResourceExhaustedError(std::string message);
[[nodiscard]] Status UnavailableError(std::string message);
[[nodiscard]] Status IoError(std::string message);
[[nodiscard]] Status CorruptError(std::string message);
[[nodiscard]] Status CancelledError(std::string message);
[[nodiscard]] Status InternalError(std::string message);

// The one place errno becomes a Status: "what: strerror (errno N)", with a
// code chosen from the errno (EINVAL -> kInvalidArgument, ENOTTY ->
// kNotSupported, EAGAIN/ENOMSG -> kUnavailable, EINTR -> kInterrupted,
// ENOMEM/ENOSPC/E2BIG -> kResourceExhausted, ...).
[[nodiscard]] Status ErrnoStatus(int sys_errno, std::string_view what);

// Result<T>: a T or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
  static_assert(!std::is_same_v<std::decay_t<T>, Status>);

 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    assert(!std::get<Status>(v_).ok() && "Result needs a value or an error");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  // OK when a value is held.
  Status status() const { return ok() ? Status() : std::get<Status>(v_); }

  // REQUIRES: ok().
  T& value() & { assert(ok()); return std::get<T>(v_); }
  const T& value() const& { assert(ok()); return std::get<T>(v_); }
  T&& value() && { assert(ok()); return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  T value_or(T fallback) const { return ok() ? std::get<T>(v_) : fallback; }

 private:
  std::variant<T, Status> v_;
};

namespace internal {
inline Status ToStatus(const Status& s) { return s; }
template <typename T>
Status ToStatus(const Result<T>& r) { return r.status(); }
}  // namespace internal

// Calls fn() (returning Status or Result<T>) until its error is not
// kInterrupted. This is the one EINTR loop in converge.
template <typename Fn>
auto RetryOnEintr(Fn&& fn) -> decltype(fn()) {
  for (;;) {
    auto r = fn();
    if (r.ok() || internal::ToStatus(r).code() != StatusCode::kInterrupted) {
      return r;
    }
  }
}

// Runs a libc call that returns -1 and sets errno on failure; returns its
// non-negative result or ErrnoStatus(errno, what). No EINTR retry here:
// wrap in RetryOnEintr() where a retry is right.
template <typename Fn>
Result<long> SysCall(std::string_view what, Fn&& fn) {
  long r = static_cast<long>(fn());
  if (r < 0) return ErrnoStatus(errno, what);
  return r;
}

}  // namespace converge

#define CONVERGE_CONCAT_INNER_(a, b) a##b
#define CONVERGE_CONCAT_(a, b) CONVERGE_CONCAT_INNER_(a, b)

// Returns the error of `expr` (a Status or Result) from the enclosing
// function when it is not OK.
#define CONVERGE_RETURN_IF_ERROR(expr)                                  \
  do {                                                                  \
    auto&& converge_status_ = (expr);                                   \
    if (!converge_status_.ok())                                         \
      return ::converge::internal::ToStatus(converge_status_);          \
  } while (0)

// `lhs = value of expr`, or returns its error.
#define CONVERGE_ASSIGN_OR_RETURN(lhs, expr)                            \
  CONVERGE_ASSIGN_OR_RETURN_IMPL_(CONVERGE_CONCAT_(converge_r_, __LINE__), \
                                  lhs, expr)
#define CONVERGE_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                    \
  if (!tmp.ok()) return tmp.status();                   \
  lhs = std::move(tmp).value()

#endif  // CONVERGE_BASE_STATUS_H_
