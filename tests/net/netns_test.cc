// Network tests between two hosts made of network namespaces (NetnsPair):
// the fixture itself, the migration stream's throughput over a shaped
// link, and a link that dies mid-stream.

#include "tests/net/netns_pair.h"

#include <net/if.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "tests/net/tcp_connection.h"

namespace converge::testing {
namespace {

using Side = NetnsPair::Side;

bool NamespaceExists(const std::string& name) {
  return std::filesystem::exists("/var/run/netns/" + name);
}

std::unique_ptr<NetnsPair> MakePair(const NetnsPair::Options& options = {}) {
  Result<std::unique_ptr<NetnsPair>> pair = NetnsPair::Create(options);
  EXPECT_TRUE(pair.ok()) << pair.status().ToString();
  return pair.ok() ? std::move(pair).value() : nullptr;
}

TEST(NetnsTest, AvailableHereAsRoot) {
  // This machine runs the suite as root: the network tests must run, not
  // skip. Elsewhere Available() explains itself.
  Status available = NetnsPair::Available();
  if (::geteuid() != 0) GTEST_SKIP() << available.message();
  EXPECT_TRUE(available.ok()) << available.ToString();
}

TEST(NetnsTest, MakesTwoNamespacesAndRemovesThemOnDestruction) {
  CONVERGE_SKIP_WITHOUT_NETNS();
  std::string names[2];
  {
    std::unique_ptr<NetnsPair> pair = MakePair();
    ASSERT_NE(pair, nullptr);
    names[0] = pair->namespace_name(Side::kA);
    names[1] = pair->namespace_name(Side::kB);
    EXPECT_NE(names[0], names[1]);
    for (const std::string& name : names) {
      EXPECT_EQ(name.rfind(NetnsPair::NamePrefix() +
                               std::to_string(::getpid()) + "-",
                           0),
                0u)
          << name;
      EXPECT_TRUE(NamespaceExists(name)) << name;
    }
    EXPECT_EQ(pair->address(Side::kA), "10.231.0.1");
    EXPECT_EQ(pair->address(Side::kB), "10.231.0.2");
  }
  for (const std::string& name : names) EXPECT_FALSE(NamespaceExists(name));
}

TEST(NetnsTest, SpawnedThreadSeesOnlyItsOwnEndOfTheLink) {
  CONVERGE_SKIP_WITHOUT_NETNS();
  std::unique_ptr<NetnsPair> pair = MakePair();
  ASSERT_NE(pair, nullptr);
  for (Side side : {Side::kA, Side::kB}) {
    const Side other = side == Side::kA ? Side::kB : Side::kA;
    const std::string mine = pair->interface_name(side);
    const std::string theirs = pair->interface_name(other);
    Status s = pair->RunIn(side, [&]() -> Status {
      if (::if_nametoindex(mine.c_str()) == 0) {
        return InternalError(mine + " is not visible in its namespace");
      }
      if (::if_nametoindex(theirs.c_str()) != 0) {
        return InternalError(theirs + " is visible from the other side");
      }
      return OkStatus();
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
  }
  // The caller's namespace has neither end.
  EXPECT_EQ(::if_nametoindex(pair->interface_name(Side::kA).c_str()), 0u);
  // The function's own error comes back from Join().
  Status failed = pair->RunIn(Side::kA, [] { return IoError("from inside"); });
  EXPECT_EQ(failed.code(), StatusCode::kIoError);
  EXPECT_EQ(failed.message(), "from inside");
}

// Writes all of `bytes` with blocking send().
Status SendAll(int fd, const std::vector<uint8_t>& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    CONVERGE_ASSIGN_OR_RETURN(long n, RetryOnEintr([&] {
      return SysCall("send", [&] {
        return ::send(fd, bytes.data() + off, bytes.size() - off,
                      MSG_NOSIGNAL);
      });
    }));
    off += size_t(n);
  }
  return OkStatus();
}

// Reads exactly `bytes` bytes with blocking recv().
Result<std::vector<uint8_t>> RecvExactly(int fd, size_t bytes) {
  std::vector<uint8_t> out(bytes);
  size_t off = 0;
  while (off < bytes) {
    CONVERGE_ASSIGN_OR_RETURN(long n, RetryOnEintr([&] {
      return SysCall("recv", [&] {
        return ::recv(fd, out.data() + off, bytes - off, 0);
      });
    }));
    if (n == 0) return IoError("recv: peer closed early");
    off += size_t(n);
  }
  return out;
}

TEST(NetnsTest, TcpConnectionCarriesBytesBothWays) {
  CONVERGE_SKIP_WITHOUT_NETNS();
  std::unique_ptr<NetnsPair> pair = MakePair();
  ASSERT_NE(pair, nullptr);
  Result<TcpConnection> conn = TcpConnection::Open(*pair, Side::kA, {});
  ASSERT_TRUE(conn.ok()) << conn.status().ToString();
  std::mt19937_64 rng(7);
  std::vector<uint8_t> a_to_b(3 << 20);
  std::vector<uint8_t> b_to_a(1 << 20);
  for (auto& b : a_to_b) b = uint8_t(rng());
  for (auto& b : b_to_a) b = uint8_t(rng());
  const int a_fd = conn->client_fd();
  const int b_fd = conn->server_fd();
  // Each side sends and receives at once so neither blocks on a full
  // socket buffer.
  std::vector<uint8_t> got_a;
  std::vector<uint8_t> got_b;
  NetnsThread a_send =
      pair->Spawn(Side::kA, [&] { return SendAll(a_fd, a_to_b); });
  NetnsThread b_send =
      pair->Spawn(Side::kB, [&] { return SendAll(b_fd, b_to_a); });
  NetnsThread b_recv = pair->Spawn(Side::kB, [&]() -> Status {
    CONVERGE_ASSIGN_OR_RETURN(got_b, RecvExactly(b_fd, a_to_b.size()));
    return OkStatus();
  });
  NetnsThread a_recv = pair->Spawn(Side::kA, [&]() -> Status {
    CONVERGE_ASSIGN_OR_RETURN(got_a, RecvExactly(a_fd, b_to_a.size()));
    return OkStatus();
  });
  for (NetnsThread* t : {&a_send, &b_send, &b_recv, &a_recv}) {
    Status s = t->Join();
    EXPECT_TRUE(s.ok()) << s.ToString();
  }
  EXPECT_TRUE(got_b == a_to_b) << "A to B bytes differ";
  EXPECT_TRUE(got_a == b_to_a) << "B to A bytes differ";
}

TEST(NetnsTest, RemovesStaleNamespacesOfDeadProcessesOnly) {
  CONVERGE_SKIP_WITHOUT_NETNS();
  // A process that has exited stands for a crashed run.
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(0);
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);
  const std::string stale =
      NetnsPair::NamePrefix() + std::to_string(child) + "-0-a";
  ASSERT_TRUE(RunCommand({"ip", "netns", "add", stale}).ok());
  ASSERT_TRUE(NamespaceExists(stale));

  std::unique_ptr<NetnsPair> live = MakePair();  // runs the cleanup
  ASSERT_NE(live, nullptr);
  EXPECT_FALSE(NamespaceExists(stale));
  // A second cleanup leaves this live process's namespaces alone.
  Result<int> removed = NetnsPair::RemoveStaleNamespaces();
  ASSERT_TRUE(removed.ok()) << removed.status().ToString();
  EXPECT_TRUE(NamespaceExists(live->namespace_name(Side::kA)));
  EXPECT_TRUE(NamespaceExists(live->namespace_name(Side::kB)));
}

TEST(NetnsTest, CommandErrorsCarryTheCommandAndItsOutput) {
  CONVERGE_SKIP_WITHOUT_NETNS();
  Result<std::string> r =
      RunCommand({"ip", "link", "show", "dev", "cvg-no-such-dev"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("`ip link show dev cvg-no-such-dev`"),
            std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find("cvg-no-such-dev"), std::string::npos);
  EXPECT_NE(r.status().message().find("exit status"), std::string::npos)
      << r.status().message();

  Result<std::string> missing = RunCommand({"cvg-no-such-program", "x"});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("cvg-no-such-program"),
            std::string::npos)
      << missing.status().message();

  Result<std::string> ok = RunCommand({"ip", "-o", "link", "show", "lo"});
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_NE(ok->find("lo"), std::string::npos);
}

TEST(NetnsTest, LinkCallsRejectBadShapesAndADeletedLink) {
  CONVERGE_SKIP_WITHOUT_NETNS();
  std::unique_ptr<NetnsPair> pair = MakePair();
  ASSERT_NE(pair, nullptr);
  struct Case {
    const char* what;
    LinkShape shape;
  };
  const Case cases[] = {
      {"zero rate", {0, 512 * 1024, 50}},
      {"zero burst", {125'000'000, 0, 50}},
      {"zero latency", {125'000'000, 512 * 1024, 0}},
  };
  for (const Case& c : cases) {
    Status s = pair->Shape(c.shape);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << c.what;
    EXPECT_NE(s.message().find("non-zero"), std::string::npos) << c.what;
  }
  EXPECT_TRUE(pair->Shape(LinkShape{}).ok());
  EXPECT_TRUE(pair->DropLink().ok());
  EXPECT_TRUE(pair->RestoreLink().ok());
  ASSERT_TRUE(pair->DeleteLink().ok());
  EXPECT_EQ(pair->RestoreLink().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(pair->Shape(LinkShape{}).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(pair->DeleteLink().code(), StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace converge::testing
