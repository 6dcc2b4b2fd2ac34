#include "bench/cli/paced_transport.h"

#include <algorithm>
#include <cassert>

namespace converge::bench {

PacedTransport::PacedTransport(Transport& inner, Clock& clock,
                               double bandwidth_bps, uint64_t max_burst_ns)
    : inner_(inner),
      clock_(clock),
      ns_per_byte_(1e9 / bandwidth_bps),
      max_burst_ns_(max_burst_ns) {
  assert(bandwidth_bps > 0);
}

Status PacedTransport::Write(std::span<const uint8_t> bytes) {
  const double now = static_cast<double>(clock_.NowNs());
  link_free_ns_ = std::max(link_free_ns_, now) +
                  static_cast<double>(bytes.size()) * ns_per_byte_;
  const double ahead_ns = link_free_ns_ - now;
  if (ahead_ns > static_cast<double>(max_burst_ns_)) {
    uint64_t wait = static_cast<uint64_t>(ahead_ns) - max_burst_ns_;
    clock_.SleepNs(wait);
    paced_ns_ += wait;
  }
  Status s = inner_.Write(bytes);
  if (s.ok()) bytes_written_ += bytes.size();
  return s;
}

Result<size_t> PacedTransport::Read(std::span<uint8_t> buf) {
  Result<size_t> n = inner_.Read(buf);
  if (n.ok()) bytes_read_ += *n;
  return n;
}

}  // namespace converge::bench
