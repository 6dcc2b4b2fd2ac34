#include "io/ram_sender.h"

#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "io/receiver.h"
#include "ram_test_memory.h"

namespace converge {
namespace {

using testing::TestMemory;

class NoDevices : public DeviceSink {
 public:
  bool HasDevice(uint32_t) const override { return false; }
  Status WriteDeviceBytes(uint32_t, std::span<const uint8_t>) override {
    return InternalError("no devices");
  }
};

StreamLayout LayoutOf(const TestMemory& m) {
  StreamLayout l;
  l.regions = m.layout();
  return l;
}

std::vector<DirtyBitmap> RandomBitmaps(const TestMemory& m, uint64_t seed,
                                       double density) {
  std::mt19937_64 rng(seed);
  std::vector<DirtyBitmap> out;
  for (const GuestRegion& r : m.regions()) {
    DirtyBitmap b(r.size_bytes / 4096);
    uint64_t p = 0;
    while (p < b.num_pages()) {  // runs of random length
      const uint64_t len = 1 + rng() % 700;
      if (std::uniform_real_distribution<>(0, 1)(rng) < density) {
        b.SetRange(p, std::min(len, b.num_pages() - p));
      }
      p += len;
    }
    out.push_back(std::move(b));
  }
  return out;
}

// Receives stream into dst and returns the summary.
ReceiveSummary ReceiveInto(const std::vector<uint8_t>& stream, TestMemory& dst) {
  MemoryTransport in(stream);
  NoDevices sink;
  Receiver receiver(in, dst.regions(), sink);
  Result<ReceiveSummary> s = receiver.Run();
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? *s : ReceiveSummary{};
}

TEST(RamSenderTest, PipelineSendsExactlyDirtyPagesProperty) {
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    TestMemory src({4 << 20, 1 << 20}, 0);
    src.Fill(seed);
    std::vector<DirtyBitmap> bitmaps = RandomBitmaps(src, seed, 0.5);
    const std::vector<DirtyBitmap> sent = bitmaps;
    uint64_t dirty = 0;
    for (const auto& b : bitmaps) dirty += b.Count();

    MemoryTransport t;
    const Codec codec = static_cast<Codec>(seed % 3);
    auto writer = StreamWriter::Create(t, LayoutOf(src), {codec, 1}).value();
    RamSenderOptions o;
    o.pages_per_record = uint32_t(1 + seed * 37 % 256);
    RamSender sender(*writer, src.regions(), o);
    Result<RamSendStats> stats = sender.Send(bitmaps);
    ASSERT_TRUE(stats.ok()) << stats.status().ToString();
    ASSERT_TRUE(writer->Finish().ok());
    EXPECT_TRUE(stats->complete);
    EXPECT_EQ(stats->pages, dirty);
    EXPECT_GT(stats->zero_pages, 0u);
    for (const auto& b : bitmaps) EXPECT_EQ(b.Count(), 0u);

    TestMemory dst({4 << 20, 1 << 20}, 0xEE);
    ReceiveSummary summary = ReceiveInto(t.data(), dst);
    EXPECT_EQ(summary.ram_pages, dirty);
    EXPECT_EQ(summary.zero_pages, stats->zero_pages);
    for (size_t r = 0; r < 2; ++r) {
      for (uint64_t p = 0; p < sent[r].num_pages(); ++p) {
        if (sent[r].Test(p)) {
          ASSERT_EQ(std::memcmp(dst.page(r, p), src.page(r, p), 4096), 0)
              << "region " << r << " page " << p;
        } else {
          ASSERT_EQ(dst.page(r, p)[0], 0xEE) << "region " << r << " page " << p;
        }
      }
    }
  }
}

TEST(RamSenderTest, PipelineBudgetStopsAndResumes) {
  TestMemory src({4 << 20}, 0);
  src.Fill(7);
  std::vector<DirtyBitmap> bitmaps(1, DirtyBitmap(1024));
  bitmaps[0].SetRange(0, 1024);
  MemoryTransport t;
  auto writer = StreamWriter::Create(t, LayoutOf(src), {Codec::kNone, 1}).value();
  RamSenderOptions o;
  o.pages_per_record = 16;
  RamSender sender(*writer, src.regions(), o);
  RamSendBudget budget;
  budget.max_bytes = 100 * 4096;
  Result<RamSendStats> first = sender.Send(bitmaps, budget);
  ASSERT_TRUE(first.ok());
  EXPECT_FALSE(first->complete);
  EXPECT_GE(first->bytes, budget.max_bytes);
  EXPECT_LT(first->bytes, budget.max_bytes + 17 * 4096 + 1000);
  EXPECT_EQ(bitmaps[0].Count(), 1024 - first->pages);
  Result<RamSendStats> rest = sender.Send(bitmaps);
  ASSERT_TRUE(rest.ok());
  EXPECT_TRUE(rest->complete);
  EXPECT_EQ(first->pages + rest->pages, 1024u);
  ASSERT_TRUE(writer->Finish().ok());
  TestMemory dst({4 << 20}, 0xEE);
  ReceiveInto(t.data(), dst);
  EXPECT_EQ(std::memcmp(dst.page(0, 0), src.page(0, 0), 4 << 20), 0);
}

TEST(RamSenderTest, PipelineDeadlinePassedSendsNothing) {
  TestMemory src({1 << 20}, 1);
  std::vector<DirtyBitmap> bitmaps(1, DirtyBitmap(256));
  bitmaps[0].SetRange(10, 20);
  MemoryTransport t;
  auto writer = StreamWriter::Create(t, LayoutOf(src)).value();
  RamSender sender(*writer, src.regions());
  RamSendBudget budget;
  budget.deadline = std::chrono::steady_clock::now();
  Result<RamSendStats> stats = sender.Send(bitmaps, budget);
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->pages, 0u);
  EXPECT_FALSE(stats->complete);
  EXPECT_EQ(bitmaps[0].Count(), 20u);
}

TEST(RamSenderTest, RejectsMismatchedInput) {
  TestMemory src({1 << 20}, 1);
  MemoryTransport t;
  auto writer = StreamWriter::Create(t, LayoutOf(src)).value();
  RamSender sender(*writer, src.regions());
  std::vector<DirtyBitmap> none;
  EXPECT_EQ(sender.Send(none).status().code(), StatusCode::kInvalidArgument);
  std::vector<DirtyBitmap> wrong(1, DirtyBitmap(10));
  Result<RamSendStats> r = sender.Send(wrong);
  EXPECT_NE(r.status().message().find("region 0"), std::string::npos);
  RamSenderOptions big;
  big.pages_per_record = 2048;  // 8 MiB per record: over the chunk cap
  RamSender too_big(*writer, src.regions(), big);
  std::vector<DirtyBitmap> ok(1, DirtyBitmap(256));
  EXPECT_EQ(too_big.Send(ok).status().code(), StatusCode::kInvalidArgument);
}

TEST(RamSenderTest, WriterRejectsPagesOutsideRegion) {
  TestMemory src({1 << 20}, 1);
  MemoryTransport t;
  auto writer = StreamWriter::Create(t, LayoutOf(src)).value();
  Status s = writer->WriteRamPages(0, 255, 2, src.page(0, 0));
  EXPECT_EQ(s.code(), StatusCode::kOutOfRange);
  s = writer->WriteRamPages(1, 0, 1, src.page(0, 0));
  EXPECT_EQ(s.code(), StatusCode::kOutOfRange);
}

}  // namespace
}  // namespace converge
