#include "io/receiver.h"

#include <map>
#include <random>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "io/ram_sender.h"
#include "io/socket_transport.h"
#include "io/stream_writer.h"
#include "ram_test_memory.h"

namespace converge {
namespace {

using testing::Content;
using testing::MakeContent;
using testing::ScriptedKernel;
using testing::TestMemory;

// Records what each device received.
class RecordingSink : public DeviceSink {
 public:
  explicit RecordingSink(std::vector<uint32_t> ids) {
    for (uint32_t id : ids) bytes[id];
  }
  bool HasDevice(uint32_t id) const override { return bytes.count(id) != 0; }
  Status WriteDeviceBytes(uint32_t id, std::span<const uint8_t> b) override {
    auto& v = bytes[id];
    v.insert(v.end(), b.begin(), b.end());
    return OkStatus();
  }
  std::map<uint32_t, std::vector<uint8_t>> bytes;
};

struct Source {
  TestMemory memory{{2 << 20, 1 << 20}, 0};
  std::map<uint32_t, std::vector<uint8_t>> devices;
  StreamLayout layout;

  explicit Source(int device_count, uint64_t seed) {
    memory.Fill(seed);
    layout.regions = memory.layout();
    for (int i = 0; i < device_count; ++i) {
      const uint32_t id = 100 + uint32_t(i);
      devices[id] = MakeContent(Content::kMixed, seed * 31 + i,
                                200000 + size_t(i) * 77777);
      layout.devices.push_back({id, 0, "dev" + std::to_string(i)});
    }
  }
  std::vector<uint32_t> ids() const {
    std::vector<uint32_t> out;
    for (const auto& [id, bytes] : devices) out.push_back(id);
    return out;
  }

  // Writes every RAM page and device byte, interleaving devices in chunks.
  Status Write(Transport& t, Codec codec) {
    CONVERGE_ASSIGN_OR_RETURN(auto w, StreamWriter::Create(t, layout, {codec, 1}));
    CONVERGE_RETURN_IF_ERROR(w->WriteIterationMark(1, 123));
    std::vector<DirtyBitmap> bitmaps;
    for (const GuestRegion& r : memory.regions()) {
      bitmaps.emplace_back(r.size_bytes / 4096);
      bitmaps.back().SetRange(0, r.size_bytes / 4096);
    }
    RamSender sender(*w, memory.regions());
    CONVERGE_RETURN_IF_ERROR(sender.Send(bitmaps).status());
    std::map<uint32_t, size_t> offset;
    bool more = true;
    for (size_t chunk = 1000; more; chunk = chunk * 3 % 70001 + 500) {
      more = false;
      for (const auto& [id, bytes] : devices) {
        const size_t n = std::min(chunk, bytes.size() - offset[id]);
        if (n == 0) continue;
        CONVERGE_RETURN_IF_ERROR(
            w->WriteDeviceChunk(id, {bytes.data() + offset[id], n}));
        offset[id] += n;
        more = true;
      }
    }
    for (const auto& [id, bytes] : devices) {
      CONVERGE_RETURN_IF_ERROR(w->EndDevice(id));
    }
    return w->Finish();
  }
};

void ExpectSameRam(TestMemory& a, TestMemory& b) {
  for (size_t r = 0; r < a.regions().size(); ++r) {
    EXPECT_EQ(std::memcmp(a.regions()[r].host, b.regions()[r].host,
                          a.regions()[r].size_bytes),
              0)
        << "region " << r;
  }
}

TEST(ReceiverTest, RoundTripEveryCodecAndDeviceCount) {
  for (Codec codec : {Codec::kNone, Codec::kLz4, Codec::kZstd}) {
    for (int devices : {1, 4, 8}) {
      SCOPED_TRACE(std::string(CodecName(codec)) + " devices " +
                   std::to_string(devices));
      Source src(devices, uint64_t(devices) + 5);
      MemoryTransport t;
      ASSERT_TRUE(src.Write(t, codec).ok());
      TestMemory dst({2 << 20, 1 << 20}, 0xEE);
      RecordingSink sink(src.ids());
      MemoryTransport in(t.data());
      Receiver receiver(in, dst.regions(), sink);
      Result<ReceiveSummary> s = receiver.Run();
      ASSERT_TRUE(s.ok()) << s.status().ToString();
      EXPECT_TRUE(s->complete);
      EXPECT_EQ(s->ram_pages, 768u);
      EXPECT_EQ(s->last_iteration, 1u);
      EXPECT_EQ(s->stream_bytes, t.data().size());
      ExpectSameRam(src.memory, dst);
      for (const auto& [id, bytes] : src.devices) {
        EXPECT_EQ(sink.bytes[id], bytes) << "device " << id;
        EXPECT_EQ(s->device_bytes[id], bytes.size());
      }
    }
  }
}

TEST(ReceiverTest, OverLoopbackSocketWithSenderThread) {
  Source src(4, 99);
  auto listener = SocketListener::Listen("127.0.0.1", 0).value();
  Status sent;
  std::thread sender([&] {
    auto t = SocketTransport::Connect("127.0.0.1", listener->port());
    if (!t.ok()) {
      sent = t.status();
      return;
    }
    sent = src.Write(**t, Codec::kLz4);
    if (sent.ok()) sent = (*t)->Close();
  });
  auto conn = listener->Accept().value();
  TestMemory dst({2 << 20, 1 << 20}, 0xEE);
  ScriptedKernel kernel;
  kernel.write_limit = 999;  // the data_fd takes short writes
  KernelDeviceSink sink(kernel);
  for (uint32_t id : src.ids()) sink.AddDevice(id, 1000 + int(id));
  int progress_calls = 0;
  ReceiverOptions options;
  options.progress = [&](const ReceiveSummary&) { ++progress_calls; };
  options.progress_every_records = 50;
  Receiver receiver(*conn, dst.regions(), sink, options);
  Result<ReceiveSummary> s = receiver.Run();
  sender.join();
  ASSERT_TRUE(sent.ok()) << sent.ToString();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ExpectSameRam(src.memory, dst);
  std::vector<uint8_t> all;  // the kernel saw every device's bytes in order
  uint64_t total = 0;
  for (const auto& [id, bytes] : src.devices) total += bytes.size();
  EXPECT_EQ(kernel.written.size(), total);
  EXPECT_GT(progress_calls, 1);
}

// A small stream: header(0), ram(1), device(2), end-of-device(3),
// end-of-stream(4). Returns the byte offset where each record starts.
std::vector<uint8_t> SmallStream(std::vector<size_t>* starts,
                                 TestMemory& memory) {
  StreamLayout layout;
  layout.regions = memory.layout();
  layout.devices = {{1, 0, "dev"}};
  MemoryTransport t;
  auto w = StreamWriter::Create(t, layout, {Codec::kLz4, 1}).value();
  starts->push_back(kPreambleBytes);
  starts->push_back(t.bytes_written());
  EXPECT_TRUE(w->WriteRamPages(0, 2, 2, memory.page(0, 2)).ok());
  starts->push_back(t.bytes_written());
  EXPECT_TRUE(w->WriteDeviceChunk(1, MakeContent(Content::kText, 1, 500)).ok());
  starts->push_back(t.bytes_written());
  EXPECT_TRUE(w->EndDevice(1).ok());
  starts->push_back(t.bytes_written());
  EXPECT_TRUE(w->Finish().ok());
  return t.data();
}

// Runs a receiver over bytes; returns (ram applied?, device bytes applied?).
std::pair<bool, bool> Apply(std::span<const uint8_t> bytes, TestMemory& src,
                            Status* status) {
  TestMemory dst({256 << 10}, 0xEE);
  RecordingSink sink({1});
  MemoryTransport in(bytes);
  Receiver receiver(in, dst.regions(), sink);
  *status = receiver.Run().status();
  const bool ram = std::memcmp(dst.page(0, 2), src.page(0, 2), 2 * 4096) == 0;
  bool untouched = true;
  for (uint64_t p = 0; p < 64; ++p) {
    if (p == 2 || p == 3) continue;
    untouched &= dst.page(0, p)[0] == 0xEE && dst.page(0, p)[4095] == 0xEE;
  }
  EXPECT_TRUE(untouched);
  if (!ram) {
    for (uint64_t p = 2; p < 4; ++p) {
      for (int i = 0; i < 4096; ++i) EXPECT_EQ(dst.page(0, p)[i], 0xEE);
    }
  }
  return {ram, !sink.bytes[1].empty()};
}

// Index of the record containing byte offset.
size_t RecordAt(const std::vector<size_t>& starts, size_t offset) {
  size_t r = 0;
  while (r + 1 < starts.size() && offset >= starts[r + 1]) ++r;
  return r;
}

TEST(ReceiverTest, CorruptByteAppliesNothingFromItsRecordOn) {
  TestMemory src({256 << 10}, 0);
  src.Fill(3);
  std::vector<size_t> starts;
  const std::vector<uint8_t> stream = SmallStream(&starts, src);
  Status ok_status;
  EXPECT_EQ(Apply(stream, src, &ok_status), std::make_pair(true, true));
  ASSERT_TRUE(ok_status.ok()) << ok_status.ToString();
  for (size_t i = 0; i < stream.size(); ++i) {
    std::vector<uint8_t> bad = stream;
    bad[i] ^= 0x01;
    Status s;
    const auto applied = Apply(bad, src, &s);
    ASSERT_FALSE(s.ok()) << "flip at " << i;
    const size_t record = i < kPreambleBytes ? 0 : RecordAt(starts, i);
    EXPECT_EQ(applied.first, record > 1) << "flip at " << i;
    EXPECT_EQ(applied.second, record > 2) << "flip at " << i;
  }
}

TEST(ReceiverTest, TruncationAppliesOnlyCompleteRecords) {
  TestMemory src({256 << 10}, 0);
  src.Fill(4);
  std::vector<size_t> starts;
  const std::vector<uint8_t> stream = SmallStream(&starts, src);
  for (size_t n = 0; n < stream.size(); ++n) {
    Status s;
    const auto applied = Apply({stream.data(), n}, src, &s);
    ASSERT_EQ(s.code(), StatusCode::kCorrupt) << n;
    EXPECT_EQ(applied.first, n >= starts[2]) << n;
    EXPECT_EQ(applied.second, n >= starts[3]) << n;
  }
}

TEST(ReceiverTest, ReorderedAndOversizedApplyNothing) {
  TestMemory src({256 << 10}, 0);
  src.Fill(5);
  std::vector<size_t> starts;
  const std::vector<uint8_t> stream = SmallStream(&starts, src);
  // Device record before the RAM record.
  std::vector<uint8_t> swapped(stream.begin(), stream.begin() + long(starts[1]));
  swapped.insert(swapped.end(), stream.begin() + long(starts[2]),
                 stream.begin() + long(starts[3]));
  swapped.insert(swapped.end(), stream.begin() + long(starts[1]),
                 stream.begin() + long(starts[2]));
  swapped.insert(swapped.end(), stream.begin() + long(starts[3]), stream.end());
  Status s;
  EXPECT_EQ(Apply(swapped, src, &s), std::make_pair(false, false));
  EXPECT_NE(s.message().find("record 1"), std::string::npos) << s.ToString();
  // A RAM record header claiming a huge payload.
  std::vector<uint8_t> oversized = stream;
  PutU32(oversized.data() + starts[1] + 4, kMaxRecordPayloadBytes + 1);
  EXPECT_EQ(Apply(oversized, src, &s), std::make_pair(false, false));
  EXPECT_NE(s.message().find("over the limit"), std::string::npos);
}

TEST(ReceiverTest, LayoutMismatchRejectedBeforeApplying) {
  Source src(2, 1);
  MemoryTransport t;
  ASSERT_TRUE(src.Write(t, Codec::kLz4).ok());
  {
    TestMemory dst({2 << 20, 2 << 20}, 0xEE);  // second region larger
    RecordingSink sink(src.ids());
    MemoryTransport in(t.data());
    Receiver receiver(in, dst.regions(), sink);
    Result<ReceiveSummary> s = receiver.Run();
    EXPECT_NE(s.status().message().find("stream region 1"), std::string::npos);
    EXPECT_EQ(dst.page(0, 0)[0], 0xEE);
    EXPECT_EQ(receiver.summary().ram_pages, 0u);
  }
  {
    TestMemory dst({2 << 20, 1 << 20}, 0xEE);
    RecordingSink sink({100});  // device 101 has nowhere to go
    MemoryTransport in(t.data());
    Receiver receiver(in, dst.regions(), sink);
    Result<ReceiveSummary> s = receiver.Run();
    EXPECT_NE(s.status().message().find("stream device 101"), std::string::npos)
        << s.status().ToString();
    EXPECT_TRUE(sink.bytes[100].empty());
    EXPECT_FALSE(receiver.summary().error.ok());
  }
}

TEST(ReceiverTest, KernelDeviceSinkErrors) {
  KernelDeviceSink sink(Kernel::Default());
  const std::vector<uint8_t> data(10, 1);
  Status s = sink.WriteDeviceBytes(3, data);
  EXPECT_NE(s.message().find("no data_fd for device 3"), std::string::npos);
  sink.AddDevice(3, -1);
  s = sink.WriteDeviceBytes(3, data);
  EXPECT_EQ(s.sys_errno(), EBADF);
  EXPECT_NE(s.message().find("write data_fd of device 3"), std::string::npos);
}

}  // namespace
}  // namespace converge
