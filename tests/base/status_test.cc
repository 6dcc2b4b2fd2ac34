#include "base/status.h"

#include <gtest/gtest.h>

namespace converge {
namespace {

TEST(StatusTest, DefaultIsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.ToString(), "OK");
  EXPECT_EQ(s.WithContext("ignored"), s);
}

struct ErrnoCase {
  int sys_errno;
  StatusCode code;
};

TEST(StatusTest, ErrnoMapsToCode) {
  const ErrnoCase cases[] = {
      {EINVAL, StatusCode::kInvalidArgument},
      {ENOTTY, StatusCode::kNotSupported},
      {EAGAIN, StatusCode::kUnavailable},
      {ENOMSG, StatusCode::kUnavailable},
      {EINTR, StatusCode::kInterrupted},
      {ENOMEM, StatusCode::kResourceExhausted},
      {E2BIG, StatusCode::kResourceExhausted},
      {ENOSPC, StatusCode::kResourceExhausted},
      {EIO, StatusCode::kIoError},
      {ENODEV, StatusCode::kIoError},
      {EOVERFLOW, StatusCode::kInvalidArgument},
      {EBUSY, StatusCode::kFailedPrecondition},
      {0, StatusCode::kInternal},
  };
  for (const ErrnoCase& c : cases) {
    Status s = ErrnoStatus(c.sys_errno, "thing");
    EXPECT_EQ(s.code(), c.code) << "errno " << c.sys_errno;
    EXPECT_EQ(s.sys_errno(), c.sys_errno);
    EXPECT_FALSE(s.ok());
  }
}

TEST(StatusTest, MessageNamesWhatFailed) {
  Status s = ErrnoStatus(EIO, "read data_fd of device 2");
  EXPECT_EQ(s.ToString(),
            "IoError: read data_fd of device 2: Input/output error (errno 5)");
  Status c = s.WithContext("drain");
  EXPECT_EQ(c.message(),
            "drain: read data_fd of device 2: Input/output error (errno 5)");
  EXPECT_EQ(c.sys_errno(), EIO);
}

Result<int> Half(int x) {
  if (x % 2 != 0) return InvalidArgumentError("odd: " + std::to_string(x));
  return x / 2;
}

Result<int> Quarter(int x) {
  CONVERGE_ASSIGN_OR_RETURN(int h, Half(x));
  CONVERGE_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

Status CheckQuarter(int x) {
  CONVERGE_RETURN_IF_ERROR(Quarter(x));
  return OkStatus();
}

TEST(StatusTest, ResultPropagates) {
  ASSERT_TRUE(Quarter(8).ok());
  EXPECT_EQ(*Quarter(8), 2);
  Result<int> r = Quarter(6);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "odd: 3");
  EXPECT_EQ(r.value_or(-1), -1);
  EXPECT_TRUE(CheckQuarter(4).ok());
  EXPECT_EQ(CheckQuarter(5).message(), "odd: 5");
}

TEST(StatusTest, RetryOnEintrLoopsOnlyOnInterrupted) {
  int calls = 0;
  Result<int> r = RetryOnEintr([&]() -> Result<int> {
    if (++calls < 5) return ErrnoStatus(EINTR, "x");
    return 7;
  });
  EXPECT_EQ(calls, 5);
  EXPECT_EQ(*r, 7);

  calls = 0;
  Status s = RetryOnEintr([&]() -> Status {
    ++calls;
    return ErrnoStatus(EIO, "x");
  });
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(s.code(), StatusCode::kIoError);
}

TEST(StatusTest, SysCallMapsMinusOne) {
  Result<long> ok = SysCall("ok", [] { return 3; });
  EXPECT_EQ(*ok, 3);
  Result<long> bad = SysCall("close -1", [] {
    errno = EBADF;
    return -1;
  });
  EXPECT_EQ(bad.status().sys_errno(), EBADF);
}

}  // namespace
}  // namespace converge
