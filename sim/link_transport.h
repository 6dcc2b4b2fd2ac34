// LinkTransport: the model's network. A Transport that discards what is
// written and advances a VirtualClock by the time the bytes take on a
// LinkModel, so the engine's stream (header, device data, end records)
// costs link time in `converge-bench model` without going anywhere.
//
// LinkClock is the shared arithmetic: bytes -> virtual nanoseconds at the
// link's bandwidth, with the fractional nanosecond carried so a stream of
// small writes costs what one large write does.
//
// Thread-safety: none; the engine's thread writes.

#ifndef CONVERGE_SIM_LINK_TRANSPORT_H_
#define CONVERGE_SIM_LINK_TRANSPORT_H_

#include <cstdint>
#include <span>

#include "base/status.h"
#include "io/transport.h"
#include "sim/link_model.h"
#include "sim/virtual_clock.h"

namespace converge::sim {

class LinkClock {
 public:
  // REQUIRES: link.bandwidth_bps() > 0. clock and link outlive this.
  LinkClock(VirtualClock& clock, const LinkModel& link);

  // Advances the clock by bytes / bandwidth.
  void ChargeBytes(uint64_t bytes);
  // Advances the clock by the link's one-way latency (once per transfer).
  void ChargeLatency();

  VirtualClock& clock() const { return clock_; }

 private:
  VirtualClock& clock_;
  const LinkModel& link_;
  double carry_ns_ = 0;  // charged but not yet advanced, < 1
};

class LinkTransport final : public Transport {
 public:
  // REQUIRES: link.bandwidth_bps() > 0. clock and link outlive this.
  LinkTransport(VirtualClock& clock, const LinkModel& link);

  // Counts the bytes and advances the clock by their link time.
  Status Write(std::span<const uint8_t> bytes) override;
  // A LinkTransport only sends: kFailedPrecondition.
  Result<size_t> Read(std::span<uint8_t> buf) override;
  // Charges the link latency once for what was written since the last
  // flush (the last byte reaching the peer).
  Status Flush() override;
  Status Close() override;

 private:
  LinkClock link_clock_;
  bool unflushed_ = false;
  bool closed_ = false;
};

}  // namespace converge::sim

#endif  // CONVERGE_SIM_LINK_TRANSPORT_H_
