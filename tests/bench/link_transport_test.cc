#include "sim/link_transport.h"

#include <gtest/gtest.h>

#include <vector>

namespace converge::sim {
namespace {

LinkModel Link(double bps, double latency_ms) {
  LinkOptions o;
  o.bandwidth_bps = bps;
  o.latency_ms = latency_ms;
  return LinkModel(o);
}

TEST(LinkTransportTest, WritesCostBandwidthTimeAndCountBytes) {
  VirtualClock clock(1000);
  LinkModel link = Link(1e9, 0);  // 1 byte per ns
  LinkTransport t(clock, link);
  std::vector<uint8_t> buf(4096);
  ASSERT_TRUE(t.Write(buf).ok());
  EXPECT_EQ(clock.NowNs(), 1000u + 4096u);
  EXPECT_EQ(t.bytes_written(), 4096u);
}

TEST(LinkTransportTest, SmallWritesCarryFractionsOfANanosecond) {
  VirtualClock clock;
  LinkModel link = Link(3e9, 0);  // a third of a ns per byte
  LinkTransport t(clock, link);
  std::vector<uint8_t> one(1);
  for (int i = 0; i < 3000; ++i) ASSERT_TRUE(t.Write(one).ok());
  // 3000 bytes at 3 GB/s is 1000 ns; truncating each write would give 0.
  EXPECT_NEAR(static_cast<double>(clock.NowNs()), 1000.0, 1.0);
}

TEST(LinkTransportTest, FlushChargesLatencyOncePerBatch) {
  VirtualClock clock;
  LinkModel link = Link(1e9, 0.5);  // 500 us latency
  LinkTransport t(clock, link);
  std::vector<uint8_t> buf(100);
  ASSERT_TRUE(t.Write(buf).ok());
  ASSERT_TRUE(t.Flush().ok());
  EXPECT_EQ(clock.NowNs(), 100u + 500'000u);
  ASSERT_TRUE(t.Flush().ok());  // nothing new: no latency
  EXPECT_EQ(clock.NowNs(), 100u + 500'000u);
}

TEST(LinkTransportTest, ReadAndUseAfterCloseFail) {
  VirtualClock clock;
  LinkModel link = Link(1e9, 0);
  LinkTransport t(clock, link);
  std::vector<uint8_t> buf(8);
  EXPECT_EQ(t.Read(buf).status().code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(t.Close().ok());
  EXPECT_EQ(t.Write(buf).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(t.Flush().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(t.Close().code(), StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace converge::sim
