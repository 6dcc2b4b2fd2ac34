#include "io/device_drain.h"

#include <fcntl.h>
#include <stdlib.h>
#include <termios.h>
#include <unistd.h>

#include <map>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "io/compress_pipeline.h"
#include "io/stream_reader.h"
#include "io/stream_writer.h"
#include "io_test_util.h"

namespace converge {
namespace {

using testing::Content;
using testing::FedPipe;
using testing::MakeContent;

// Collects every chunk until the drain is done; checks that sequences are
// consecutive.
std::map<uint32_t, std::vector<uint8_t>> DrainAll(DeviceDrain& drain,
                                                  Status* error = nullptr) {
  std::map<uint32_t, std::vector<uint8_t>> got;
  std::map<uint32_t, uint64_t> seq;
  for (;;) {
    Result<std::optional<DrainChunk>> c = drain.Next();
    if (!c.ok()) {
      if (error != nullptr) *error = c.status();
      return got;
    }
    if (!c->has_value()) return got;
    const DrainChunk& chunk = **c;
    // Consecutive from wherever an earlier call stopped.
    auto it = seq.try_emplace(chunk.device_id, chunk.sequence).first;
    EXPECT_EQ(chunk.sequence, it->second++);
    auto& v = got[chunk.device_id];
    v.insert(v.end(), chunk.bytes.begin(), chunk.bytes.end());
    drain.Release(chunk);
  }
}

TEST(DeviceDrainTest, ManyDevicesKeepPerDeviceOrderThread) {
  for (bool fill : {true, false}) {
    std::vector<std::unique_ptr<FedPipe>> pipes;
    std::vector<DrainDevice> devices;
    for (uint32_t i = 0; i < 8; ++i) {
      pipes.push_back(std::make_unique<FedPipe>(
          MakeContent(Content::kMixed, i, (i + 1) * 300000 + i), 1000 + i * 5000));
      devices.push_back({i * 10, pipes.back()->read_fd(), "dev" + std::to_string(i)});
    }
    DeviceDrainOptions o;
    o.chunk_bytes = 256 << 10;
    o.fill_chunks = fill;
    auto drain = DeviceDrain::Create(devices, DataPhase::kStopCopy, o);
    ASSERT_TRUE(drain.ok()) << drain.status().ToString();
    auto got = DrainAll(**drain);
    for (uint32_t i = 0; i < 8; ++i) {
      EXPECT_EQ(got[i * 10], pipes[i]->data()) << "device " << i;
      EXPECT_TRUE((*drain)->ended(i * 10));
      EXPECT_EQ((*drain)->bytes_read(i * 10), pipes[i]->data().size());
    }
  }
}

TEST(DeviceDrainTest, RegisteredBuffersAreUsedWhenAllowed) {
  FedPipe pipe(MakeContent(Content::kText, 1, 100000), 4096);
  const DrainDevice dev{1, pipe.read_fd(), "d"};
  auto drain = DeviceDrain::Create({&dev, 1}, DataPhase::kStopCopy).value();
  EXPECT_TRUE(drain->registered_buffers());  // root here: no memlock limit
  EXPECT_EQ(DrainAll(*drain)[1], pipe.data());
  DeviceDrainOptions o;
  o.register_buffers = false;
  FedPipe pipe2(MakeContent(Content::kText, 2, 100000), 4096);
  const DrainDevice dev2{1, pipe2.read_fd(), "d"};
  auto plain = DeviceDrain::Create({&dev2, 1}, DataPhase::kStopCopy, o).value();
  EXPECT_FALSE(plain->registered_buffers());
  EXPECT_EQ(DrainAll(*plain)[1], pipe2.data());
}

TEST(DeviceDrainTest, PreCopyIdleRearmThenStopCopy) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
  const DrainDevice dev{5, fds[0], "nic5"};
  auto drain = DeviceDrain::Create({&dev, 1}, DataPhase::kPreCopy).value();
  // Nothing yet: the drain returns at once.
  auto got = DrainAll(*drain);
  EXPECT_TRUE(got.empty());
  ASSERT_EQ(::write(fds[1], "hello", 5), 5);
  EXPECT_TRUE(DrainAll(*drain).empty());  // idle until re-armed
  drain->Rearm();
  got = DrainAll(*drain);
  EXPECT_EQ(got[5], std::vector<uint8_t>({'h', 'e', 'l', 'l', 'o'}));
  ASSERT_EQ(::write(fds[1], "!", 1), 1);
  ::close(fds[1]);
  drain->Rearm();
  got = DrainAll(*drain);
  EXPECT_EQ(got[5], std::vector<uint8_t>({'!'}));
  EXPECT_FALSE(drain->ended(5));  // 0 in PRE_COPY is not the end
  drain->EnterStopCopy();
  EXPECT_TRUE(DrainAll(*drain).empty());
  EXPECT_TRUE(drain->ended(5));
  ::close(fds[0]);
}

TEST(DeviceDrainTest, RefreshPrecopyInfoRearmsAndNamesFailures) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
  const DrainDevice dev{6, fds[0], "nic6"};
  auto drain = DeviceDrain::Create({&dev, 1}, DataPhase::kPreCopy).value();
  EXPECT_TRUE(DrainAll(*drain).empty());  // idle
  ASSERT_EQ(::write(fds[1], "xy", 2), 2);
  testing::ScriptedKernel kernel;
  kernel.precopy.initial_bytes = 0;
  kernel.precopy.dirty_bytes = 0;
  Result<std::vector<PrecopyInfo>> infos = drain->RefreshPrecopyInfo(kernel);
  ASSERT_TRUE(infos.ok());
  EXPECT_TRUE(DrainAll(*drain).empty());  // nothing reported: stays idle
  kernel.precopy.dirty_bytes = 2;
  infos = drain->RefreshPrecopyInfo(kernel);
  ASSERT_TRUE(infos.ok());
  EXPECT_EQ((*infos)[0].dirty_bytes, 2u);
  EXPECT_EQ(kernel.precopy_calls, 2);
  EXPECT_EQ(DrainAll(*drain)[6], std::vector<uint8_t>({'x', 'y'}));
  kernel.precopy_errno = ENODEV;
  infos = drain->RefreshPrecopyInfo(kernel);
  EXPECT_EQ(infos.status().sys_errno(), ENODEV);
  EXPECT_NE(infos.status().message().find("device nic6"), std::string::npos);
  ::close(fds[0]);
  ::close(fds[1]);
}

// A pty master reads EIO once the slave side is closed: a real EIO in the
// middle of a device's stream.
TEST(DeviceDrainTest, EioMidStreamNamesDevice) {
  int master = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  ASSERT_GE(master, 0);
  ASSERT_EQ(::grantpt(master), 0);
  ASSERT_EQ(::unlockpt(master), 0);
  int slave = ::open(::ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
  ASSERT_GE(slave, 0);
  termios tio{};
  ASSERT_EQ(::tcgetattr(slave, &tio), 0);
  ::cfmakeraw(&tio);
  ASSERT_EQ(::tcsetattr(slave, TCSANOW, &tio), 0);
  ASSERT_EQ(::write(slave, "data", 4), 4);
  ::close(slave);
  const DrainDevice dev{2, master, "gpu2"};
  DeviceDrainOptions o;
  o.fill_chunks = false;
  auto drain = DeviceDrain::Create({&dev, 1}, DataPhase::kStopCopy, o).value();
  Status error;
  auto got = DrainAll(*drain, &error);
  EXPECT_EQ(error.sys_errno(), EIO) << error.ToString();
  EXPECT_NE(error.message().find("device gpu2"), std::string::npos);
  EXPECT_EQ(got[2], std::vector<uint8_t>({'d', 'a', 't', 'a'}));
  ::close(master);
}

// One device fails while another has a read in flight that will never
// complete: the error comes back, and destroying the drain cancels the read
// instead of waiting for it.
TEST(DeviceDrainTest, DestroyCancelsReadsInFlight) {
  int master = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  ASSERT_GE(master, 0);
  ASSERT_EQ(::grantpt(master), 0);
  ASSERT_EQ(::unlockpt(master), 0);
  int slave = ::open(::ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
  ASSERT_GE(slave, 0);
  ::close(slave);
  int quiet[2];
  ASSERT_EQ(::pipe2(quiet, O_CLOEXEC), 0);
  const DrainDevice devices[] = {{1, quiet[0], "quiet"}, {2, master, "broken"}};
  {
    auto drain = DeviceDrain::Create(devices, DataPhase::kStopCopy).value();
    Status error;
    DrainAll(*drain, &error);
    EXPECT_EQ(error.sys_errno(), EIO) << error.ToString();
    EXPECT_NE(error.message().find("broken"), std::string::npos);
  }
  ::close(quiet[0]);
  ::close(quiet[1]);
  ::close(master);
}

TEST(DeviceDrainTest, WaitsForReleasedBuffersThread) {
  FedPipe pipe(MakeContent(Content::kRandom, 3, 2 << 20), 65536);
  const DrainDevice dev{1, pipe.read_fd(), "d"};
  DeviceDrainOptions o;
  o.chunk_bytes = 64 << 10;
  o.buffers_per_device = 2;
  auto drain = DeviceDrain::Create({&dev, 1}, DataPhase::kStopCopy, o).value();
  // Hold one chunk and hand it back from another thread later; the drain
  // must wait for it rather than fail or reuse it.
  Result<std::optional<DrainChunk>> held = drain->Next();
  ASSERT_TRUE(held.ok() && held->has_value());
  std::vector<uint8_t> got((*held)->bytes.begin(), (*held)->bytes.end());
  Result<std::optional<DrainChunk>> second = drain->Next();
  ASSERT_TRUE(second.ok() && second->has_value());
  got.insert(got.end(), (*second)->bytes.begin(), (*second)->bytes.end());
  std::thread releaser([&] {
    drain->Release(**held);
    drain->Release(**second);
  });
  auto rest = DrainAll(*drain);
  releaser.join();
  got.insert(got.end(), rest[1].begin(), rest[1].end());
  EXPECT_EQ(got, pipe.data());
}

TEST(DeviceDrainTest, CreateRejectsBadInput) {
  EXPECT_EQ(DeviceDrain::Create({}, DataPhase::kStopCopy).status().code(),
            StatusCode::kInvalidArgument);
  const DrainDevice twice[] = {{1, 0, "a"}, {1, 0, "b"}};
  auto r = DeviceDrain::Create(twice, DataPhase::kStopCopy);
  EXPECT_NE(r.status().message().find("given twice"), std::string::npos);
  const DrainDevice nofd{1, -1, "nic"};
  r = DeviceDrain::Create({&nofd, 1}, DataPhase::kStopCopy);
  EXPECT_NE(r.status().message().find("nic has no data_fd"), std::string::npos);
  DeviceDrainOptions o;
  o.chunk_bytes = 0;
  const DrainDevice ok{1, 0, "a"};
  EXPECT_FALSE(DeviceDrain::Create({&ok, 1}, DataPhase::kStopCopy, o).ok());
}

TEST(DeviceDrainTest, PipelineRoundTripEveryCodec) {
  for (Codec codec : {Codec::kNone, Codec::kLz4, Codec::kZstd}) {
    SCOPED_TRACE(CodecName(codec));
    std::vector<std::unique_ptr<FedPipe>> pipes;
    std::vector<DrainDevice> devices;
    StreamLayout layout;
    for (uint32_t i = 0; i < 4; ++i) {
      pipes.push_back(std::make_unique<FedPipe>(
          MakeContent(Content::kMixed, 10 + i, 700000 * (i + 1)), 50000));
      devices.push_back({i, pipes.back()->read_fd(), "d" + std::to_string(i)});
      layout.devices.push_back({i, 0, devices.back().name});
    }
    MemoryTransport t;
    auto writer = StreamWriter::Create(t, layout, {codec, 1}).value();
    DeviceDrainOptions o;
    o.chunk_bytes = 128 << 10;
    auto drain = DeviceDrain::Create(devices, DataPhase::kStopCopy, o).value();
    Result<DrainStats> stats = DrainToStream(*drain, *writer);
    ASSERT_TRUE(stats.ok()) << stats.status().ToString();
    uint64_t total = 0;
    for (auto& p : pipes) total += p->data().size();
    EXPECT_EQ(stats->bytes, total);
    for (uint32_t i = 0; i < 4; ++i) ASSERT_TRUE(writer->EndDevice(i).ok());
    ASSERT_TRUE(writer->Finish().ok());
    if (codec != Codec::kNone) {
      EXPECT_LT(stats->encoded_bytes, total);
    }

    MemoryTransport in(t.data());
    auto reader = StreamReader::Open(in).value();
    std::map<uint32_t, std::vector<uint8_t>> got;
    while (!reader->finished()) {
      Result<const StreamRecord*> r = reader->Next();
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      if ((*r)->type == RecordType::kDeviceData) {
        auto& v = got[(*r)->device.device_id];
        v.insert(v.end(), (*r)->data.begin(), (*r)->data.end());
      }
    }
    for (uint32_t i = 0; i < 4; ++i) EXPECT_EQ(got[i], pipes[i]->data());
  }
}

TEST(DeviceDrainTest, PipelineStopsOnReadError) {
  int master = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  ASSERT_GE(master, 0);
  ASSERT_EQ(::grantpt(master), 0);
  ASSERT_EQ(::unlockpt(master), 0);
  int slave = ::open(::ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
  ASSERT_GE(slave, 0);
  ::close(slave);
  StreamLayout layout;
  layout.devices = {{9, 0, "bad"}};
  MemoryTransport t;
  auto writer = StreamWriter::Create(t, layout).value();
  const DrainDevice dev{9, master, "bad"};
  auto drain = DeviceDrain::Create({&dev, 1}, DataPhase::kStopCopy).value();
  Result<DrainStats> stats = DrainToStream(*drain, *writer);
  EXPECT_EQ(stats.status().sys_errno(), EIO);
  ::close(master);
}

}  // namespace
}  // namespace converge
