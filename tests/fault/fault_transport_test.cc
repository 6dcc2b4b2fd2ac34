// Transport faults: the connection reset mid-stream (the receiver aborts
// with RST), a corrupt record reaching the receiver, and the file
// transport's disk filling up.

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "io/file_transport.h"
#include "io/socket_transport.h"
#include "tests/fault/fault_rig.h"
#include "tests/vm/kvm_test_support.h"

namespace converge {
namespace {

using testing::FaultEngineOptions;
using testing::FaultRigOptions;
using testing::FaultRun;

class FaultTransportTest : public ::testing::Test {
 protected:
  void SetUp() override { std::signal(SIGPIPE, SIG_IGN); }
};

TEST_F(FaultTransportTest, ConnectionResetMidStreamAborts) {
  CONVERGE_SKIP_WITHOUT_KVM();
  auto rig = testing::NewRig(FaultRigOptions());
  ASSERT_NE(rig, nullptr);
  // A plain listener: the receiver needs its raw socket for SO_LINGER.
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(lfd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(bind(lfd, reinterpret_cast<sockaddr*>(&addr), len), 0);
  ASSERT_EQ(listen(lfd, 1), 0);
  ASSERT_EQ(getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  // The receiver reads 4 MiB, then closes with SO_LINGER 0: an RST.
  std::thread receiver([&] {
    int fd = accept(lfd, nullptr, nullptr);
    ASSERT_GE(fd, 0);
    std::vector<uint8_t> buf(1 << 16);
    uint64_t got = 0;
    while (got < (4u << 20)) {
      ssize_t n = read(fd, buf.data(), buf.size());
      if (n <= 0) break;
      got += static_cast<uint64_t>(n);
    }
    linger l{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    close(fd);
  });
  Result<std::unique_ptr<SocketTransport>> conn =
      SocketTransport::Connect("127.0.0.1", ntohs(addr.sin_port));
  ASSERT_TRUE(conn.ok()) << conn.status().ToString();
  auto engine = rig->NewEngine(rig->kernel(), **conn, FaultEngineOptions(), {});
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  Result<SwitchoverStats> s = rig->RunSource(**engine);
  receiver.join();
  close(lfd);
  (void)rig->vm().Resume();
  ASSERT_FALSE(s.ok()) << "the migration ignored a reset connection";
  const std::string why = s.status().ToString();
  std::printf("[ outcome  ] reset: %s\n", why.c_str());
  EXPECT_TRUE(why.find("reset") != std::string::npos ||
              why.find("Broken pipe") != std::string::npos)
      << why;
  (void)(*conn)->Close();
  testing::ExpectSourceRecovers(*rig, std::move(*engine));
}

TEST_F(FaultTransportTest, CorruptRecordIsRejected) {
  CONVERGE_SKIP_WITHOUT_KVM();
  auto rig = testing::NewRig(FaultRigOptions());
  ASSERT_NE(rig, nullptr);
  MemoryTransport out;
  auto engine = rig->NewEngine(rig->kernel(), out, FaultEngineOptions(), {});
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  Result<SwitchoverStats> s = rig->RunSource(**engine);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  std::vector<uint8_t> stream = out.data();
  stream[stream.size() / 2] ^= 0x40;
  MemoryTransport in(stream);
  auto dest = rig->NewDestination(in);
  ASSERT_TRUE(dest.ok()) << dest.status().ToString();
  Result<DestinationResult> d = (*dest)->Run();
  ASSERT_FALSE(d.ok()) << "a flipped byte went unnoticed";
  std::printf("[ outcome  ] corrupt: %s\n", d.status().ToString().c_str());
  EXPECT_EQ(d.status().code(), StatusCode::kCorrupt) << d.status().ToString();
  for (int i = 0; i < 2; ++i) {
    EXPECT_NE(rig->destination_device(i).state(), sim::MigState::kResuming);
    EXPECT_FALSE(rig->destination_device(i).restored_ok());
  }
  ASSERT_TRUE(rig->vm().Resume().ok());
  testing::ExpectSourceRecovers(*rig, std::move(*engine));
}

// A 1 MiB tmpfs (root only); /dev/full otherwise.
class TinyDisk {
 public:
  TinyDisk() {
    char tmpl[] = "/tmp/converge-fault-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return;
    dir_ = tmpl;
    mounted_ = mount("tmpfs", dir_.c_str(), "tmpfs", 0, "size=1m") == 0;
  }
  ~TinyDisk() {
    if (mounted_) umount(dir_.c_str());
    if (!dir_.empty()) rmdir(dir_.c_str());
  }
  TinyDisk(const TinyDisk&) = delete;
  TinyDisk& operator=(const TinyDisk&) = delete;
  std::string path() const {
    return mounted_ ? dir_ + "/stream" : std::string("/dev/full");
  }

 private:
  std::string dir_;
  bool mounted_ = false;
};

TEST_F(FaultTransportTest, FileTransportDiskFullAborts) {
  CONVERGE_SKIP_WITHOUT_KVM();
  auto rig = testing::NewRig(FaultRigOptions());
  ASSERT_NE(rig, nullptr);
  TinyDisk disk;
  Result<std::unique_ptr<FileTransport>> file =
      FileTransport::Create(disk.path());
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  auto engine = rig->NewEngine(rig->kernel(), **file, FaultEngineOptions(), {});
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  Result<SwitchoverStats> s = rig->RunSource(**engine);
  (void)rig->vm().Resume();
  ASSERT_FALSE(s.ok()) << "the stream did not fit and nobody noticed";
  const std::string why = s.status().ToString();
  std::printf("[ outcome  ] %s: %s\n", disk.path().c_str(), why.c_str());
  EXPECT_NE(why.find("No space left"), std::string::npos) << why;
  (void)(*file)->Close();
  testing::ExpectSourceRecovers(*rig, std::move(*engine));
}

}  // namespace
}  // namespace converge
