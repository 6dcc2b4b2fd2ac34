#include "io/data_fd_reader.h"

#include <fcntl.h>
#include <unistd.h>

#include <vector>

#include <gtest/gtest.h>

#include "io_test_util.h"

namespace converge {
namespace {

using testing::Content;
using testing::FedPipe;
using testing::MakeContent;
using testing::ScriptedKernel;

TEST(DataFdReaderTest, ClassifyTable) {
  struct Case {
    DataPhase phase;
    long result;
    StatusCode code;  // kOk: outcome applies
    ReadOutcome outcome;
  };
  const DataPhase pre = DataPhase::kPreCopy, stop = DataPhase::kStopCopy;
  const Case cases[] = {
      {pre, 100, StatusCode::kOk, ReadOutcome::kData},
      {stop, 1, StatusCode::kOk, ReadOutcome::kData},
      {pre, 0, StatusCode::kOk, ReadOutcome::kNothingNow},
      {stop, 0, StatusCode::kOk, ReadOutcome::kEnd},
      {pre, -ENOMSG, StatusCode::kOk, ReadOutcome::kNothingNow},
      {pre, -EAGAIN, StatusCode::kOk, ReadOutcome::kNothingNow},
      {stop, -EAGAIN, StatusCode::kOk, ReadOutcome::kNothingNow},
      {stop, -ENOMSG, StatusCode::kIoError, ReadOutcome::kData},
      {pre, -EIO, StatusCode::kIoError, ReadOutcome::kData},
      {stop, -ENODEV, StatusCode::kIoError, ReadOutcome::kData},
      {stop, -EINTR, StatusCode::kInterrupted, ReadOutcome::kData},
  };
  for (const Case& c : cases) {
    Result<ReadOutcome> r = ClassifyDataFdRead(c.phase, c.result, "nic7");
    SCOPED_TRACE("result " + std::to_string(c.result));
    if (c.code == StatusCode::kOk) {
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      EXPECT_EQ(*r, c.outcome);
    } else {
      ASSERT_FALSE(r.ok());
      EXPECT_EQ(r.status().code(), c.code) << r.status().ToString();
      EXPECT_NE(r.status().message().find("device nic7"), std::string::npos);
    }
  }
}

TEST(DataFdReaderTest, ShortReadsFromPipeKeepOrderThread) {
  const std::vector<uint8_t> data = MakeContent(Content::kMixed, 1, 3 << 20);
  FedPipe pipe(data, 7777);
  DataFdReaderOptions o;
  o.chunk_bytes = 1 << 20;
  DataFdReader reader(Kernel::Default(), pipe.read_fd(), 3, "dev3", o);
  std::vector<uint8_t> got;
  ByteBuffer chunk;
  uint64_t expect_seq = 0;
  for (;;) {
    uint64_t seq = 99;
    Result<ReadOutcome> r = reader.Read(chunk, &seq);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    if (*r == ReadOutcome::kEnd) break;
    ASSERT_EQ(*r, ReadOutcome::kData);
    EXPECT_EQ(seq, expect_seq++);
    EXPECT_LE(chunk.size(), o.chunk_bytes);
    got.insert(got.end(), chunk.begin(), chunk.end());
  }
  EXPECT_TRUE(reader.ended());
  EXPECT_EQ(got, data);
  EXPECT_EQ(reader.bytes_read(), data.size());
  EXPECT_EQ(reader.chunks_read(), expect_seq);
}

TEST(DataFdReaderTest, PreCopyEmptyNonBlockingPipeIsNothingNow) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
  DataFdReader reader(Kernel::Default(), fds[0], 0, "dev0");
  reader.set_phase(DataPhase::kPreCopy);
  ByteBuffer chunk;
  EXPECT_EQ(reader.Read(chunk, nullptr).value(), ReadOutcome::kNothingNow);
  ASSERT_EQ(::write(fds[1], "abc", 3), 3);
  EXPECT_EQ(reader.Read(chunk, nullptr).value(), ReadOutcome::kData);
  EXPECT_EQ(chunk.size(), 3u);
  ::close(fds[1]);
  // PRE_COPY: 0 is only "nothing now", never the end.
  EXPECT_EQ(reader.Read(chunk, nullptr).value(), ReadOutcome::kNothingNow);
  EXPECT_FALSE(reader.ended());
  reader.set_phase(DataPhase::kStopCopy);
  EXPECT_EQ(reader.Read(chunk, nullptr).value(), ReadOutcome::kEnd);
  EXPECT_TRUE(reader.ended());
  ::close(fds[0]);
}

TEST(DataFdReaderTest, ScriptedReadSemantics) {
  ScriptedKernel k;
  const std::vector<uint8_t> a = {1, 2, 3}, b = {4, 5};
  k.reads = {{-ENOMSG, {}}, {3, a}, {0, {}}, {-EAGAIN, {}},
             {-EINTR, {}},  {2, b}, {-EIO, {}}};
  DataFdReader reader(k, 1000, 4, "gpu4");
  reader.set_phase(DataPhase::kPreCopy);
  ByteBuffer chunk;
  uint64_t seq = 0;
  EXPECT_EQ(reader.Read(chunk, &seq).value(), ReadOutcome::kNothingNow);
  EXPECT_EQ(reader.Read(chunk, &seq).value(), ReadOutcome::kData);
  EXPECT_EQ(std::vector<uint8_t>(chunk.begin(), chunk.end()), a);
  EXPECT_EQ(seq, 0u);
  EXPECT_EQ(reader.Read(chunk, &seq).value(), ReadOutcome::kNothingNow);
  EXPECT_EQ(reader.Read(chunk, &seq).value(), ReadOutcome::kNothingNow);
  // EINTR is retried by the seam; the data behind it arrives.
  EXPECT_EQ(reader.Read(chunk, &seq).value(), ReadOutcome::kData);
  EXPECT_EQ(std::vector<uint8_t>(chunk.begin(), chunk.end()), b);
  EXPECT_EQ(seq, 1u);
  Result<ReadOutcome> r = reader.Read(chunk, &seq);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().sys_errno(), EIO);
  EXPECT_NE(r.status().message().find("device gpu4"), std::string::npos);
}

TEST(DataFdReaderTest, StopCopyEnomsgAndEnodevAreErrors) {
  ScriptedKernel k;
  k.reads = {{-ENOMSG, {}}, {-ENODEV, {}}};
  DataFdReader reader(k, 1000, 1, "nic1");
  ByteBuffer chunk;
  Result<ReadOutcome> r = reader.Read(chunk, nullptr);
  EXPECT_NE(r.status().message().find("ENOMSG in STOP_COPY"), std::string::npos);
  r = reader.Read(chunk, nullptr);
  EXPECT_EQ(r.status().sys_errno(), ENODEV);
  EXPECT_NE(r.status().message().find("nic1"), std::string::npos);
}

TEST(DataFdReaderTest, PrecopyInfoThroughSeam) {
  ScriptedKernel k;
  k.precopy.initial_bytes = 1 << 20;
  k.precopy.dirty_bytes = 4096;
  DataFdReader reader(k, 1000, 1, "nic1");
  Result<PrecopyInfo> info = reader.QueryPrecopyInfo();
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->initial_bytes, 1u << 20);
  EXPECT_EQ(info->dirty_bytes, 4096u);
  EXPECT_EQ(k.precopy_calls, 1);
  k.precopy_errno = EINVAL;  // outside PRE_COPY
  info = QueryPrecopyInfo(k, 1000, "nic1");
  EXPECT_EQ(info.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(info.status().message().find("VFIO_MIG_GET_PRECOPY_INFO on device nic1"),
            std::string::npos);
}

TEST(DataFdReaderTest, PrecopyInfoOnRealFdIsNotSupported) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  Result<PrecopyInfo> info = QueryPrecopyInfo(Kernel::Default(), fds[0], "p");
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.status().sys_errno(), ENOTTY);
  ::close(fds[0]);
  ::close(fds[1]);
}

}  // namespace
}  // namespace converge
