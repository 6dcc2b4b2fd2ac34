#include "bench/cli/paced_transport.h"

#include <gtest/gtest.h>

#include <vector>

#include "sim/virtual_clock.h"

namespace converge::bench {
namespace {

TEST(PacedTransportTest, HoldsWritesToTheCapAfterTheBurst) {
  sim::VirtualClock clock;
  MemoryTransport inner;
  // 1 GB/s (1 byte per ns), bursts of 1000 ns pass without waiting.
  PacedTransport paced(inner, clock, 1e9, 1000);
  std::vector<uint8_t> kb(1000, 7);
  ASSERT_TRUE(paced.Write(kb).ok());
  EXPECT_EQ(clock.NowNs(), 0u);  // within the burst
  for (int i = 0; i < 9; ++i) ASSERT_TRUE(paced.Write(kb).ok());
  // 10000 bytes take 10000 ns; the last 1000 may still be in flight.
  EXPECT_EQ(clock.NowNs(), 9000u);
  EXPECT_EQ(paced.paced_ns(), 9000u);
  EXPECT_EQ(paced.bytes_written(), 10000u);
  EXPECT_EQ(inner.data().size(), 10000u);
}

TEST(PacedTransportTest, IdleTimeIsNotBankedAsCredit) {
  sim::VirtualClock clock;
  MemoryTransport inner;
  PacedTransport paced(inner, clock, 1e9, 0);
  std::vector<uint8_t> kb(1000);
  ASSERT_TRUE(paced.Write(kb).ok());
  clock.AdvanceNs(1'000'000);  // the link sat idle for 1 ms
  const uint64_t before = clock.NowNs();
  ASSERT_TRUE(paced.Write(kb).ok());
  ASSERT_TRUE(paced.Write(kb).ok());
  // Two more KB still take 2000 ns at the cap.
  EXPECT_EQ(clock.NowNs() - before, 2000u);
}

TEST(PacedTransportTest, ForwardsReadsFlushAndClose) {
  sim::VirtualClock clock;
  const std::vector<uint8_t> input{1, 2, 3};
  MemoryTransport inner(input);
  PacedTransport paced(inner, clock, 1e6);
  std::vector<uint8_t> buf(8);
  Result<size_t> n = paced.Read(buf);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 3u);
  EXPECT_EQ(paced.bytes_read(), 3u);
  EXPECT_TRUE(paced.Flush().ok());
  EXPECT_TRUE(paced.Close().ok());
  EXPECT_FALSE(paced.Write(buf).ok());  // the inner transport is closed
  EXPECT_EQ(paced.bytes_written(), 0u);
}

}  // namespace
}  // namespace converge::bench
