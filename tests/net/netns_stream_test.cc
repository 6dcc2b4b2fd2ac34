// The migration stream between two network namespaces: StreamWriter over a
// SocketTransport on side A, Receiver on side B. Measures the rate over a
// tbf-shaped link and checks what a link that dies mid-stream does to both
// ends.

#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "io/receiver.h"
#include "io/socket_transport.h"
#include "io/stream_writer.h"
#include "tests/net/netns_pair.h"
#include "tests/net/tcp_connection.h"

namespace converge::testing {
namespace {

using Side = NetnsPair::Side;
using Clock = std::chrono::steady_clock;

constexpr uint32_t kDeviceId = 7;
constexpr size_t kChunkBytes = 1 << 20;

// Device data that does not compress: a few random 1 MiB chunks, sent in
// rotation (chunk i is pattern i % 4).
class DeviceChunks {
 public:
  DeviceChunks() {
    std::mt19937_64 rng(20240611);
    for (auto& chunk : patterns_) {
      chunk.resize(kChunkBytes);
      for (size_t i = 0; i < kChunkBytes; i += 8) {
        const uint64_t v = rng();
        std::memcpy(chunk.data() + i, &v, 8);
      }
    }
  }
  std::span<const uint8_t> At(uint64_t index) const {
    return patterns_[index % 4];
  }

 private:
  std::vector<uint8_t> patterns_[4];
};

StreamLayout OneDeviceLayout() {
  StreamLayout layout;
  layout.devices.push_back({kDeviceId, 0, "netns-test-device"});
  return layout;
}

// Writes `chunks` device chunks (codec none), then ends the stream.
Status SendDeviceStream(Transport& transport, const DeviceChunks& data,
                        uint64_t chunks) {
  CONVERGE_ASSIGN_OR_RETURN(
      std::unique_ptr<StreamWriter> writer,
      StreamWriter::Create(transport, OneDeviceLayout(),
                           CodecOptions{Codec::kNone, 1}));
  for (uint64_t i = 0; i < chunks; ++i) {
    CONVERGE_RETURN_IF_ERROR(writer->WriteDeviceChunk(kDeviceId, data.At(i)));
  }
  CONVERGE_RETURN_IF_ERROR(writer->EndDevice(kDeviceId));
  CONVERGE_RETURN_IF_ERROR(writer->Finish());
  return transport.Close();
}

// Takes each applied device chunk and checks it is the next one sent.
// Runs on the receiver's thread; read the counters after joining it.
class VerifyingSink final : public DeviceSink {
 public:
  explicit VerifyingSink(const DeviceChunks& data) : data_(data) {}
  bool HasDevice(uint32_t id) const override { return id == kDeviceId; }
  Status WriteDeviceBytes(uint32_t id, std::span<const uint8_t> bytes) override {
    std::span<const uint8_t> expected = data_.At(chunks_);
    if (id != kDeviceId || bytes.size() != expected.size() ||
        std::memcmp(bytes.data(), expected.data(), bytes.size()) != 0) {
      ++mismatches_;
      return CorruptError("device chunk " + std::to_string(chunks_) +
                          " differs from the one sent");
    }
    ++chunks_;
    bytes_ += bytes.size();
    return OkStatus();
  }
  uint64_t chunks() const { return chunks_; }
  uint64_t bytes() const { return bytes_; }
  uint64_t mismatches() const { return mismatches_; }

 private:
  const DeviceChunks& data_;
  uint64_t chunks_ = 0;
  uint64_t bytes_ = 0;
  uint64_t mismatches_ = 0;
};

// Stream bytes received, sampled once per record.
struct Sample {
  Clock::time_point when;
  uint64_t stream_bytes;
};

// Both ends of a stream across the pair: the sender's transport on side A
// and the receiver's on side B. The raw fds stay known so a watchdog can
// shut a hung socket down; the transports outlive the threads using them.
struct StreamEnds {
  std::unique_ptr<SocketTransport> sender;
  std::unique_ptr<SocketTransport> receiver;
  int sender_fd = -1;
  int receiver_fd = -1;
};

Result<StreamEnds> OpenStream(NetnsPair& pair, const TcpTimeouts& timeouts) {
  CONVERGE_ASSIGN_OR_RETURN(TcpConnection conn,
                            TcpConnection::Open(pair, Side::kA, timeouts));
  StreamEnds ends;
  ends.sender_fd = conn.client_fd();
  ends.receiver_fd = conn.server_fd();
  CONVERGE_ASSIGN_OR_RETURN(
      ends.sender, SocketTransport::FromFd(conn.ReleaseClient(), "A to B"));
  CONVERGE_ASSIGN_OR_RETURN(
      ends.receiver, SocketTransport::FromFd(conn.ReleaseServer(), "B from A"));
  return ends;
}

TEST(NetnsTest, StreamOverShapedGigabitLinkRunsAtTheShapedRate) {
  CONVERGE_SKIP_WITHOUT_NETNS();
  NetnsPair::Options options;
  options.shaped = true;  // 1 Gbit/s tbf on both ends
  Result<std::unique_ptr<NetnsPair>> pair = NetnsPair::Create(options);
  ASSERT_TRUE(pair.ok()) << pair.status().ToString();
  Result<StreamEnds> ends = OpenStream(**pair, {});
  ASSERT_TRUE(ends.ok()) << ends.status().ToString();

  // 128 MiB; the first 16 MiB are warm-up (slow start, the tbf bucket and
  // socket buffers filling) and are not timed. The rest is timed in 8 MiB
  // windows: the link's rate is their median, so one stall of a thread on
  // a busy host (which starves the tbf bucket for a while) does not count
  // as the link's rate, while the average over all of it still must not
  // fall far below.
  constexpr uint64_t kChunks = 128;
  constexpr uint64_t kWarmupBytes = 16 * kChunkBytes;
  constexpr uint64_t kWindowBytes = 8 * kChunkBytes;
  const DeviceChunks data;
  VerifyingSink sink(data);
  std::vector<Sample> samples;
  samples.reserve(kChunks + 8);
  ReceiverOptions receiver_options;
  receiver_options.progress_every_records = 1;
  receiver_options.progress = [&](const ReceiveSummary& s) {
    samples.push_back({Clock::now(), s.stream_bytes});
  };
  Receiver receiver(*ends->receiver, {}, sink, receiver_options);
  Result<ReceiveSummary> received = UnavailableError("receiver did not run");
  NetnsThread receiving = (*pair)->Spawn(Side::kB, [&]() -> Status {
    received = receiver.Run();
    return received.status();
  });
  NetnsThread sending = (*pair)->Spawn(Side::kA, [&] {
    return SendDeviceStream(*ends->sender, data, kChunks);
  });
  Status sent = sending.Join();
  Status got = receiving.Join();
  ASSERT_TRUE(sent.ok()) << sent.ToString();
  ASSERT_TRUE(got.ok()) << got.ToString();
  ASSERT_TRUE(received->complete);
  EXPECT_EQ(sink.bytes(), kChunks * kChunkBytes);
  EXPECT_EQ(sink.mismatches(), 0u);

  auto rate = [](const Sample& from, const Sample& to) {
    const double seconds =
        std::chrono::duration<double>(to.when - from.when).count();
    return seconds > 0 ? double(to.stream_bytes - from.stream_bytes) / seconds
                       : 0.0;
  };
  auto first_at = [&](uint64_t bytes) -> const Sample* {
    for (const Sample& s : samples) {
      if (s.stream_bytes >= bytes) return &s;
    }
    return nullptr;
  };
  const Sample* start = first_at(kWarmupBytes);
  ASSERT_NE(start, nullptr);
  std::vector<double> window_bps;
  for (const Sample* from = start; from != nullptr;) {
    const Sample* to = first_at(from->stream_bytes + kWindowBytes);
    if (to != nullptr) window_bps.push_back(rate(*from, *to));
    from = to;
  }
  ASSERT_GE(window_bps.size(), 10u);
  std::sort(window_bps.begin(), window_bps.end());
  const double median_bps = window_bps[window_bps.size() / 2];
  const Sample& end = samples.back();
  const double average_bps = rate(*start, end);
  const double shaped_bps = double(options.shape.rate_bps);
  std::printf("stream over tbf %.0f B/s: median of %zu windows %.1f MB/s "
              "(%.1f%% of shaped), slowest %.1f, fastest %.1f; average "
              "%.1f MB/s over %.1f MiB\n",
              shaped_bps, window_bps.size(), median_bps / 1e6,
              100 * median_bps / shaped_bps, window_bps.front() / 1e6,
              window_bps.back() / 1e6, average_bps / 1e6,
              double(end.stream_bytes - start->stream_bytes) / (1 << 20));
  RecordProperty("achieved_bps", std::to_string(uint64_t(median_bps)));
  EXPECT_NEAR(median_bps, shaped_bps, 0.15 * shaped_bps)
      << "achieved " << median_bps / 1e6 << " MB/s over a link shaped to "
      << shaped_bps / 1e6 << " MB/s";
  EXPECT_LE(average_bps, 1.15 * shaped_bps) << "the shaping did not hold";
  EXPECT_GE(average_bps, 0.5 * shaped_bps)
      << "the stream as a whole ran at " << average_bps / 1e6 << " MB/s";
}

enum class LinkFault { kDown, kDeleted };

// Streams 1 GiB over a shaped link, kills the link once 16 MiB arrived,
// and checks both ends fail on their own with a clear error.
void ExpectDeadLinkFailsBothEnds(LinkFault fault) {
  NetnsPair::Options options;
  options.shaped = true;  // keeps the stream in flight when the link dies
  Result<std::unique_ptr<NetnsPair>> pair = NetnsPair::Create(options);
  ASSERT_TRUE(pair.ok()) << pair.status().ToString();
  const TcpTimeouts timeouts;
  Result<StreamEnds> ends = OpenStream(**pair, timeouts);
  ASSERT_TRUE(ends.ok()) << ends.status().ToString();

  // 1 GiB would take ~9 s; the link dies after 16 MiB arrived.
  constexpr uint64_t kChunks = 1024;
  constexpr uint64_t kDropAfterBytes = 16 * kChunkBytes;
  const DeviceChunks data;
  VerifyingSink sink(data);

  std::mutex mu;
  std::condition_variable cv;
  bool drop_now = false;
  int finished = 0;
  auto mark_finished = [&] {
    std::lock_guard<std::mutex> lock(mu);
    ++finished;
    cv.notify_all();
  };

  ReceiverOptions receiver_options;
  receiver_options.progress_every_records = 1;
  receiver_options.progress = [&](const ReceiveSummary& s) {
    if (s.stream_bytes < kDropAfterBytes) return;
    std::lock_guard<std::mutex> lock(mu);
    drop_now = true;
    cv.notify_all();
  };
  Receiver receiver(*ends->receiver, {}, sink, receiver_options);
  Result<ReceiveSummary> received = UnavailableError("receiver did not run");
  NetnsThread receiving = (*pair)->Spawn(Side::kB, [&]() -> Status {
    received = receiver.Run();
    mark_finished();
    return received.status();
  });
  NetnsThread sending = (*pair)->Spawn(Side::kA, [&]() -> Status {
    Status s = SendDeviceStream(*ends->sender, data, kChunks);
    mark_finished();
    return s;
  });

  {
    std::unique_lock<std::mutex> lock(mu);
    const bool started = cv.wait_for(lock, std::chrono::seconds(10),
                                     [&] { return drop_now || finished > 0; });
    EXPECT_TRUE(started) << "16 MiB did not arrive within 10 s";
  }
  const Clock::time_point dropped_at = Clock::now();
  Status drop = fault == LinkFault::kDown ? (*pair)->DropLink()
                                               : (*pair)->DeleteLink();
  EXPECT_TRUE(drop.ok()) << drop.ToString();

  // Watchdog: both ends must give up on their own (TCP_USER_TIMEOUT and
  // keepalive); past the deadline the test fails and the sockets are shut
  // down so the threads can be joined.
  const auto deadline = std::chrono::milliseconds(
      5 * timeouts.liveness.user_timeout_ms + 5000);
  {
    std::unique_lock<std::mutex> lock(mu);
    if (!cv.wait_for(lock, deadline, [&] { return finished == 2; })) {
      ADD_FAILURE() << "an end still hangs " << deadline.count()
                    << " ms after the link died";
      ::shutdown(ends->sender_fd, SHUT_RDWR);
      ::shutdown(ends->receiver_fd, SHUT_RDWR);
    }
  }
  Status sent = sending.Join();
  Status got = receiving.Join();
  const double fail_s =
      std::chrono::duration<double>(Clock::now() - dropped_at).count();
  std::printf("link %s after %.1f MiB: both ends failed within %.2f s\n"
              "  writer: %s\n  reader: %s\n",
              fault == LinkFault::kDown ? "down" : "deleted",
              double(sink.bytes()) / (1 << 20), fail_s,
              sent.ToString().c_str(), got.ToString().c_str());

  // Both ends report an error that says what failed.
  ASSERT_FALSE(sent.ok()) << "the writer finished 1 GiB over a dead link";
  EXPECT_FALSE(sent.message().empty());
  ASSERT_FALSE(got.ok()) << "the reader completed over a dead link";
  EXPECT_FALSE(got.message().empty());
  EXPECT_FALSE(receiver.summary().complete);
  EXPECT_EQ(receiver.summary().error, got);

  // The receiver applied whole verified records only, each the one sent,
  // and nothing past the last.
  EXPECT_EQ(sink.mismatches(), 0u);
  EXPECT_GE(sink.bytes(), kDropAfterBytes);
  EXPECT_EQ(sink.bytes(), sink.chunks() * kChunkBytes);
  EXPECT_EQ(receiver.summary().device_bytes.at(kDeviceId), sink.bytes());
  EXPECT_LT(sink.chunks(), kChunks);
}

TEST(NetnsTest, LinkDownMidStreamFailsWriterAndReaderWithoutHanging) {
  CONVERGE_SKIP_WITHOUT_NETNS();
  ExpectDeadLinkFailsBothEnds(LinkFault::kDown);
}

TEST(NetnsTest, LinkDeletedMidStreamFailsWriterAndReaderWithoutHanging) {
  CONVERGE_SKIP_WITHOUT_NETNS();
  ExpectDeadLinkFailsBothEnds(LinkFault::kDeleted);
}

}  // namespace
}  // namespace converge::testing
