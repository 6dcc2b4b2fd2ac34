#include "io/uring.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <vector>

#include <gtest/gtest.h>

namespace converge {
namespace {

struct Pipe {
  Pipe() { EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0); }
  ~Pipe() {
    ::close(fds[0]);
    ::close(fds[1]);
  }
  int fds[2];
};

// Submits what is queued and returns the result of the one completion.
int RunOne(Uring& ring, uint64_t* user_data = nullptr) {
  EXPECT_TRUE(ring.Submit().ok());
  Result<io_uring_cqe*> cqe = ring.WaitCqe();
  EXPECT_TRUE(cqe.ok());
  const int res = (*cqe)->res;
  if (user_data != nullptr) *user_data = io_uring_cqe_get_data64(*cqe);
  ring.CqeSeen(*cqe);
  return res;
}

TEST(UringTest, CreateProbesFeatures) {
  auto ring = Uring::Create();
  ASSERT_TRUE(ring.ok()) << ring.status().ToString();
  EXPECT_NE((*ring)->features() & IORING_FEAT_NODROP, 0u);
  EXPECT_GE((*ring)->sq_entries(), 64u);
}

TEST(UringTest, CreateRejectsBadEntries) {
  for (unsigned entries : {0u, 65536u}) {
    UringOptions o;
    o.entries = entries;
    auto ring = Uring::Create(o);
    ASSERT_FALSE(ring.ok());
    EXPECT_EQ(ring.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(ring.status().message().find("entries"), std::string::npos);
  }
}

TEST(UringTest, WriteThenReadThroughPipe) {
  auto ring = Uring::Create().value();
  Pipe p;
  const char msg[] = "converge";
  ASSERT_TRUE(ring->PrepWrite(p.fds[1], msg, sizeof(msg), uint64_t(-1), 7));
  uint64_t tag = 0;
  EXPECT_EQ(RunOne(*ring, &tag), int(sizeof(msg)));
  EXPECT_EQ(tag, 7u);
  char buf[64] = {};
  ASSERT_TRUE(ring->PrepRead(p.fds[0], buf, sizeof(buf), uint64_t(-1), 9));
  EXPECT_EQ(RunOne(*ring, &tag), int(sizeof(msg)));
  EXPECT_EQ(tag, 9u);
  EXPECT_STREQ(buf, msg);
}

TEST(UringTest, ReadOfBadFdCompletesWithEbadf) {
  auto ring = Uring::Create().value();
  char buf[8];
  ASSERT_TRUE(ring->PrepRead(-1, buf, sizeof(buf), 0, 1));
  EXPECT_EQ(RunOne(*ring), -EBADF);
}

TEST(UringTest, PeekCqeWithoutCompletionIsNull) {
  auto ring = Uring::Create().value();
  EXPECT_EQ(ring->PeekCqe(), nullptr);
}

TEST(UringTest, SqFullReturnsFalse) {
  UringOptions o;
  o.entries = 4;
  auto ring = Uring::Create(o).value();
  Pipe p;
  char buf[1];
  unsigned queued = 0;
  while (ring->PrepRead(p.fds[0], buf, 1, uint64_t(-1), queued)) ++queued;
  EXPECT_EQ(queued, ring->sq_entries());
}

TEST(UringTest, CancelReadInFlight) {
  auto ring = Uring::Create().value();
  Pipe p;
  char buf[16];
  ASSERT_TRUE(ring->PrepRead(p.fds[0], buf, sizeof(buf), uint64_t(-1), 5));
  ASSERT_TRUE(ring->Submit().ok());
  ASSERT_TRUE(ring->PrepCancel(5, 6));
  ASSERT_TRUE(ring->Submit().ok());
  std::map<uint64_t, int> results;
  for (int i = 0; i < 2; ++i) {
    Result<io_uring_cqe*> cqe = ring->WaitCqe();
    ASSERT_TRUE(cqe.ok());
    results[io_uring_cqe_get_data64(*cqe)] = (*cqe)->res;
    ring->CqeSeen(*cqe);
  }
  EXPECT_EQ(results[5], -ECANCELED);
  EXPECT_EQ(results[6], 0);
  // Cancelling what is not in flight says so.
  ASSERT_TRUE(ring->PrepCancel(5, 7));
  EXPECT_EQ(RunOne(*ring), -ENOENT);
}

TEST(UringTest, RegisteredBuffersAndFixedRead) {
  auto ring = Uring::Create().value();
  std::vector<uint8_t> buffer(4096, 0);
  const iovec iov{buffer.data(), buffer.size()};
  ASSERT_TRUE(ring->RegisterBuffers({&iov, 1}).ok());
  EXPECT_TRUE(ring->has_registered_buffers());
  Pipe p;
  ASSERT_EQ(::write(p.fds[1], "abc", 3), 3);
  ASSERT_TRUE(ring->PrepReadFixed(p.fds[0], buffer.data() + 10, 100,
                                  uint64_t(-1), 0, 3));
  EXPECT_EQ(RunOne(*ring), 3);
  EXPECT_EQ(std::memcmp(buffer.data() + 10, "abc", 3), 0);
  EXPECT_TRUE(ring->UnregisterBuffers().ok());
  EXPECT_FALSE(ring->has_registered_buffers());
  EXPECT_TRUE(ring->UnregisterBuffers().ok());  // no-op
}

TEST(UringTest, FixedReadOutsideRegisteredBufferFails) {
  auto ring = Uring::Create().value();
  std::vector<uint8_t> buffer(4096);
  std::vector<uint8_t> other(4096);
  const iovec iov{buffer.data(), buffer.size()};
  ASSERT_TRUE(ring->RegisterBuffers({&iov, 1}).ok());
  Pipe p;
  ASSERT_EQ(::write(p.fds[1], "x", 1), 1);
  ASSERT_TRUE(
      ring->PrepReadFixed(p.fds[0], other.data(), 16, uint64_t(-1), 0, 1));
  EXPECT_EQ(RunOne(*ring), -EFAULT);
}

TEST(UringTest, RegisterBuffersRejectsBadIovec) {
  auto ring = Uring::Create().value();
  const iovec iov{nullptr, 4096};
  Status s = ring->RegisterBuffers({&iov, 1});
  EXPECT_FALSE(s.ok());
  EXPECT_FALSE(ring->has_registered_buffers());
}

TEST(UringTest, RegisteredFiles) {
  auto ring = Uring::Create().value();
  Pipe p;
  EXPECT_TRUE(ring->RegisterFiles(p.fds).ok());
  EXPECT_TRUE(ring->UnregisterFiles().ok());
  const int bad[] = {123456};
  Status s = ring->RegisterFiles(bad);
  EXPECT_EQ(s.sys_errno(), EBADF) << s.ToString();
}

// Without CAP_IPC_LOCK and with a tiny RLIMIT_MEMLOCK, registering a buffer
// fails with ENOMEM; the error must say to raise the limit. Runs in a child
// process (it drops a capability); exits 0 when the message is right.
[[noreturn]] void RegisterOverMemlockChild() {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  syscall(SYS_capget, &hdr, data);
  data[0].effective &= ~(1u << CAP_IPC_LOCK);
  data[0].permitted &= ~(1u << CAP_IPC_LOCK);
  syscall(SYS_capset, &hdr, data);
  rlimit lim{64 << 10, 64 << 10};
  setrlimit(RLIMIT_MEMLOCK, &lim);
  auto says_raise_limit = [](const Status& s) {
    return s.code() == StatusCode::kResourceExhausted &&
           s.message().find("ulimit -l") != std::string::npos;
  };
  // Locked memory is counted per user, so other rings of this user may
  // already use up the tiny limit and fail the setup itself: the same
  // advice is due then.
  auto ring = Uring::Create();
  if (!ring.ok()) _exit(says_raise_limit(ring.status()) ? 0 : 2);
  std::vector<uint8_t> big(8 << 20);
  const iovec iov{big.data(), big.size()};
  _exit(says_raise_limit((*ring)->RegisterBuffers({&iov, 1})) ? 0 : 1);
}

TEST(UringTest, RegisterBuffersOverMemlockSaysRaiseLimit) {
  EXPECT_EXIT(RegisterOverMemlockChild(), ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace converge
