#include "io/transport.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "io/file_transport.h"
#include "io/socket_transport.h"
#include "io_test_util.h"

namespace converge {
namespace {

using testing::Content;
using testing::MakeContent;

std::string TempPath(const char* tag) {
  return std::string(::testing::TempDir()) + "converge_" + tag + "_" +
         std::to_string(::getpid());
}

// Writes data in pieces of varying size.
Status WritePieces(Transport& t, const std::vector<uint8_t>& data) {
  size_t off = 0;
  size_t piece = 1;
  while (off < data.size()) {
    const size_t n = std::min(piece, data.size() - off);
    CONVERGE_RETURN_IF_ERROR(t.Write({data.data() + off, n}));
    off += n;
    piece = piece * 7 % 300007 + 1;
  }
  return OkStatus();
}

std::vector<uint8_t> ReadToEnd(Transport& t) {
  std::vector<uint8_t> out;
  std::vector<uint8_t> buf(100000);
  for (;;) {
    Result<size_t> n = t.Read(buf);
    EXPECT_TRUE(n.ok()) << n.status().ToString();
    if (!n.ok() || *n == 0) return out;
    out.insert(out.end(), buf.begin(), buf.begin() + long(*n));
  }
}

TEST(TransportTest, MemoryTransportRoundTrip) {
  MemoryTransport t;
  const std::vector<uint8_t> data = MakeContent(Content::kText, 1, 5000);
  ASSERT_TRUE(WritePieces(t, data).ok());
  EXPECT_EQ(t.data(), data);
  EXPECT_EQ(t.bytes_written(), data.size());
  EXPECT_EQ(ReadToEnd(t), data);
  EXPECT_EQ(t.bytes_read(), data.size());
  ASSERT_TRUE(t.Close().ok());
  EXPECT_EQ(t.Write(data).code(), StatusCode::kFailedPrecondition);
}

TEST(TransportTest, ReadFullStopsAtEnd) {
  const std::vector<uint8_t> data = {1, 2, 3};
  MemoryTransport t(data);
  std::vector<uint8_t> buf(5);
  EXPECT_EQ(ReadFull(t, buf).value(), 3u);
  EXPECT_EQ(ReadFull(t, buf).value(), 0u);
}

TEST(TransportTest, FileRoundTrip) {
  const std::string path = TempPath("file");
  const std::vector<uint8_t> data = MakeContent(Content::kMixed, 2, 5 << 20);
  UringStreamOptions o;
  o.buffer_bytes = 64 << 10;
  o.max_buffers = 4;
  {
    auto t = FileTransport::Create(path, o);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    ASSERT_TRUE(WritePieces(**t, data).ok());
    EXPECT_LE((*t)->stream().peak_buffered_bytes(), 4u * (64 << 10));
    ASSERT_TRUE((*t)->Close().ok());
    EXPECT_EQ((*t)->bytes_written(), data.size());
    EXPECT_EQ((*t)->Write(data).code(), StatusCode::kFailedPrecondition);
  }
  auto r = FileTransport::Open(path);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(ReadToEnd(**r), data);
  EXPECT_EQ((*r)->bytes_read(), data.size());
  std::remove(path.c_str());
}

// Writes of a buffer or more skip the copy; small writes around them are
// buffered; the bytes land in order and buffers hold only the small ones.
TEST(TransportTest, LargeWritesGoStraightFromTheCallersMemory) {
  const std::string path = TempPath("direct");
  const std::vector<uint8_t> data = MakeContent(Content::kRandom, 6, 3 << 20);
  UringStreamOptions o;
  o.buffer_bytes = 64 << 10;
  o.max_buffers = 2;
  const size_t pieces[] = {100, 1 << 20, 7, 64 << 10, 1000, (1 << 20) + 3};
  {
    auto t = FileTransport::Create(path, o);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    size_t off = 0;
    for (size_t n : pieces) {
      ASSERT_TRUE((*t)->Write({data.data() + off, n}).ok());
      off += n;
    }
    ASSERT_TRUE((*t)->Write({data.data() + off, data.size() - off}).ok());
    EXPECT_LE((*t)->stream().peak_buffered_bytes(), 1107u);
    ASSERT_TRUE((*t)->Close().ok());
  }
  auto r = FileTransport::Open(path);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(ReadToEnd(**r), data);
  std::remove(path.c_str());
}

TEST(TransportTest, FileErrorsNameThePath) {
  auto r = FileTransport::Open("/nonexistent/converge/stream");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("/nonexistent/converge/stream"),
            std::string::npos);
  EXPECT_EQ(r.status().sys_errno(), ENOENT);
  UringStreamOptions bad;
  bad.max_buffers = 0;
  EXPECT_EQ(FileTransport::Create(TempPath("bad"), bad).status().code(),
            StatusCode::kInvalidArgument);
  std::remove(TempPath("bad").c_str());
}

TEST(TransportTest, WriteToReadOnlyFileFails) {
  const std::string path = TempPath("ro");
  { ASSERT_TRUE(FileTransport::Create(path).ok()); }
  auto t = FileTransport::Open(path).value();
  const std::vector<uint8_t> data(100, 1);
  ASSERT_TRUE(t->Write(data).ok());  // buffered
  Status s = t->Flush();
  EXPECT_EQ(s.sys_errno(), EBADF) << s.ToString();
  EXPECT_FALSE(t->Write(data).ok());  // the error sticks
  std::remove(path.c_str());
}

TEST(TransportTest, LoopbackSocketRoundTripThread) {
  auto listener = SocketListener::Listen("127.0.0.1", 0);
  ASSERT_TRUE(listener.ok()) << listener.status().ToString();
  const uint16_t port = (*listener)->port();
  ASSERT_NE(port, 0);
  const std::vector<uint8_t> data = MakeContent(Content::kRandom, 3, 8 << 20);
  std::thread sender([&] {
    auto t = SocketTransport::Connect("127.0.0.1", port);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    EXPECT_TRUE(WritePieces(**t, data).ok());
    EXPECT_TRUE((*t)->Close().ok());
    EXPECT_EQ((*t)->bytes_written(), data.size());
  });
  auto conn = (*listener)->Accept();
  ASSERT_TRUE(conn.ok()) << conn.status().ToString();
  EXPECT_EQ(ReadToEnd(**conn), data);
  sender.join();
}

// A reader that drains slowly: the writer is held back and its buffers
// never exceed the limit.
TEST(TransportTest, BackpressureBoundsMemoryThread) {
  auto listener = SocketListener::Listen("127.0.0.1", 0);
  ASSERT_TRUE(listener.ok());
  const uint16_t port = (*listener)->port();
  UringStreamOptions o;
  o.buffer_bytes = 32 << 10;
  o.max_buffers = 3;
  const std::vector<uint8_t> data = MakeContent(Content::kText, 4, 4 << 20);
  size_t peak = 0;
  std::thread sender([&] {
    auto t = SocketTransport::Connect("127.0.0.1", port, o);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    EXPECT_TRUE(WritePieces(**t, data).ok());
    peak = (*t)->stream().peak_buffered_bytes();
    EXPECT_TRUE((*t)->Close().ok());
  });
  auto conn = (*listener)->Accept();
  ASSERT_TRUE(conn.ok());
  std::vector<uint8_t> got;
  std::vector<uint8_t> buf(16 << 10);
  for (;;) {
    Result<size_t> n = (*conn)->Read(buf);
    ASSERT_TRUE(n.ok());
    if (*n == 0) break;
    got.insert(got.end(), buf.begin(), buf.begin() + long(*n));
    if (got.size() < (1 << 20)) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }
  sender.join();
  EXPECT_EQ(got, data);
  EXPECT_LE(peak, 3u * (32 << 10));
  EXPECT_GT(peak, 0u);
}

TEST(TransportTest, ConnectErrors) {
  auto bad = SocketTransport::Connect("not-an-address", 1);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("not-an-address"), std::string::npos);
  // A port nobody listens on: take a free one and close it.
  uint16_t port;
  {
    auto l = SocketListener::Listen("127.0.0.1", 0).value();
    port = l->port();
  }
  auto refused = SocketTransport::Connect("127.0.0.1", port);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().sys_errno(), ECONNREFUSED);
  EXPECT_NE(refused.status().message().find("127.0.0.1:" + std::to_string(port)),
            std::string::npos);
}

int GetIntOption(int fd, int level, int name) {
  int value = -1;
  socklen_t len = sizeof value;
  EXPECT_EQ(::getsockopt(fd, level, name, &value, &len), 0) << errno;
  return value;
}

TEST(TransportTest, SetTcpLivenessSetsEveryOption) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SetTcpLiveness(fd, {.user_timeout_ms = 1500,
                                  .keepalive_idle_s = 3,
                                  .keepalive_interval_s = 2})
                  .ok());
  EXPECT_EQ(GetIntOption(fd, IPPROTO_TCP, TCP_NODELAY), 1);
  EXPECT_EQ(GetIntOption(fd, IPPROTO_TCP, TCP_USER_TIMEOUT), 1500);
  EXPECT_EQ(GetIntOption(fd, SOL_SOCKET, SO_KEEPALIVE), 1);
  EXPECT_EQ(GetIntOption(fd, IPPROTO_TCP, TCP_KEEPIDLE), 3);
  EXPECT_EQ(GetIntOption(fd, IPPROTO_TCP, TCP_KEEPINTVL), 2);
  ::close(fd);
}

TEST(TransportTest, SetTcpLivenessZeroKeepsKernelDefaults) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SetTcpLiveness(fd, {.user_timeout_ms = 0,
                                  .keepalive_idle_s = 0,
                                  .keepalive_interval_s = 0})
                  .ok());
  EXPECT_EQ(GetIntOption(fd, IPPROTO_TCP, TCP_USER_TIMEOUT), 0);
  EXPECT_EQ(GetIntOption(fd, SOL_SOCKET, SO_KEEPALIVE), 0);
  ::close(fd);
}

TEST(TransportTest, SetTcpLivenessErrorsNameTheProblem) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  Status s = SetTcpLiveness(fd, {.user_timeout_ms = 1000,
                                 .keepalive_idle_s = 5,
                                 .keepalive_interval_s = 0});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("keepalive_interval_s"), std::string::npos)
      << s.ToString();
  ::close(fd);
  // Not a socket: the failing option is named.
  const int not_socket = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  s = SetTcpLiveness(not_socket, {});
  EXPECT_EQ(s.sys_errno(), ENOTSOCK) << s.ToString();
  EXPECT_NE(s.message().find("TCP_NODELAY"), std::string::npos)
      << s.ToString();
  ::close(not_socket);
}

TEST(TransportTest, ConnectAndAcceptSetLiveness) {
  auto listener = SocketListener::Listen("127.0.0.1", 0);
  ASSERT_TRUE(listener.ok()) << listener.status().ToString();
  const TcpLiveness liveness{.user_timeout_ms = 4000,
                             .keepalive_idle_s = 7,
                             .keepalive_interval_s = 3};
  auto client =
      SocketTransport::Connect("127.0.0.1", (*listener)->port(), {}, liveness);
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  auto server = (*listener)->Accept({}, liveness);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  for (const int fd : {(*client)->fd(), (*server)->fd()}) {
    EXPECT_EQ(GetIntOption(fd, IPPROTO_TCP, TCP_NODELAY), 1);
    EXPECT_EQ(GetIntOption(fd, IPPROTO_TCP, TCP_USER_TIMEOUT), 4000);
    EXPECT_EQ(GetIntOption(fd, SOL_SOCKET, SO_KEEPALIVE), 1);
    EXPECT_EQ(GetIntOption(fd, IPPROTO_TCP, TCP_KEEPIDLE), 7);
    EXPECT_EQ(GetIntOption(fd, IPPROTO_TCP, TCP_KEEPINTVL), 3);
  }
  const std::vector<uint8_t> data = MakeContent(Content::kText, 5, 64 << 10);
  ASSERT_TRUE(WritePieces(**client, data).ok());
  ASSERT_TRUE((*client)->Close().ok());
  EXPECT_EQ(ReadToEnd(**server), data);
}

TEST(TransportTest, ListenErrors) {
  auto l = SocketListener::Listen("127.0.0.1", 0).value();
  auto again = SocketListener::Listen("127.0.0.1", l->port());
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().sys_errno(), EADDRINUSE);
  EXPECT_FALSE(SocketListener::Listen("1.2.3", 0).ok());
}

}  // namespace
}  // namespace converge
