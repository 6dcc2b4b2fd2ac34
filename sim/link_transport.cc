#include "sim/link_transport.h"

#include <cassert>
#include <cmath>

namespace converge::sim {

LinkClock::LinkClock(VirtualClock& clock, const LinkModel& link)
    : clock_(clock), link_(link) {
  assert(link.bandwidth_bps() > 0);
}

void LinkClock::ChargeBytes(uint64_t bytes) {
  double ns = static_cast<double>(bytes) * 1e9 / link_.bandwidth_bps() +
              carry_ns_;
  double whole = std::floor(ns);
  carry_ns_ = ns - whole;
  clock_.AdvanceNs(static_cast<uint64_t>(whole));
}

void LinkClock::ChargeLatency() {
  // TransferNs(0) is the latency alone.
  clock_.AdvanceNs(link_.TransferNs(0));
}

LinkTransport::LinkTransport(VirtualClock& clock, const LinkModel& link)
    : link_clock_(clock, link) {}

Status LinkTransport::Write(std::span<const uint8_t> bytes) {
  if (closed_) return FailedPreconditionError("write on a closed link");
  link_clock_.ChargeBytes(bytes.size());
  bytes_written_ += bytes.size();
  unflushed_ = unflushed_ || !bytes.empty();
  return OkStatus();
}

Result<size_t> LinkTransport::Read(std::span<uint8_t> /*buf*/) {
  return FailedPreconditionError("a modelled link only sends");
}

Status LinkTransport::Flush() {
  if (closed_) return FailedPreconditionError("flush on a closed link");
  if (unflushed_) link_clock_.ChargeLatency();
  unflushed_ = false;
  return OkStatus();
}

Status LinkTransport::Close() {
  if (closed_) return FailedPreconditionError("link already closed");
  Status s = Flush();
  closed_ = true;
  return s;
}

}  // namespace converge::sim
