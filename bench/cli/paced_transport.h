// PacedTransport: a Transport that holds another one to a bandwidth cap
// (--link-gbps on a real link), so the engine sees the link an operator
// would give a migration. Writes are forwarded whole; a write that gets
// ahead of the cap sleeps on the Clock until the link would have carried
// it (bursts up to max_burst_ns are let through without sleeping).
//
// Thread-safety: none, like every Transport.

#ifndef CONVERGE_BENCH_CLI_PACED_TRANSPORT_H_
#define CONVERGE_BENCH_CLI_PACED_TRANSPORT_H_

#include <cstdint>

#include "base/clock.h"
#include "io/transport.h"

namespace converge::bench {

class PacedTransport final : public Transport {
 public:
  // REQUIRES: bandwidth_bps > 0. inner and clock outlive this.
  PacedTransport(Transport& inner, Clock& clock, double bandwidth_bps,
                 uint64_t max_burst_ns = 1'000'000);

  Status Write(std::span<const uint8_t> bytes) override;
  Result<size_t> Read(std::span<uint8_t> buf) override;
  Status Flush() override { return inner_.Flush(); }
  Status Close() override { return inner_.Close(); }

  // Time spent waiting for the cap.
  uint64_t paced_ns() const { return paced_ns_; }

 private:
  Transport& inner_;
  Clock& clock_;
  const double ns_per_byte_;
  const uint64_t max_burst_ns_;
  double link_free_ns_ = 0;  // when the link has carried every byte so far
  uint64_t paced_ns_ = 0;
};

}  // namespace converge::bench

#endif  // CONVERGE_BENCH_CLI_PACED_TRANSPORT_H_
