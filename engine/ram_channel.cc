#include "engine/ram_channel.h"

#include <cassert>
#include <chrono>
#include <optional>
#include <utility>

#include "io/ram_sender.h"
#include "io/stream_writer.h"

namespace converge {
namespace {

// RamSender with the engine clock's deadline converted to steady_clock at
// the start of each Send().
class RamSenderChannel final : public RamChannel {
 public:
  RamSenderChannel(Clock& clock, std::vector<GuestRegion> regions,
                   const RamSenderChannelOptions& options)
      : clock_(clock), regions_(std::move(regions)), options_(options) {}

  Status Attach(StreamWriter& writer) override {
    RamSenderOptions o;
    o.pages_per_record = options_.pages_per_record;
    o.max_records_in_flight = options_.max_records_in_flight;
    sender_.emplace(writer, regions_, o);
    return OkStatus();
  }

  Result<RamChannelStats> Send(std::span<DirtyBitmap> bitmaps,
                               const RamChannelBudget& budget) override {
    if (!sender_) {
      return FailedPreconditionError("RAM channel: Send() before Attach()");
    }
    RamSendBudget b;
    b.max_bytes = budget.max_bytes;
    const uint64_t now_ns = clock_.NowNs();
    if (budget.deadline_ns != RamChannelBudget().deadline_ns) {
      const uint64_t left_ns =
          budget.deadline_ns > now_ns ? budget.deadline_ns - now_ns : 0;
      b.deadline = std::chrono::steady_clock::now() +
                   std::chrono::nanoseconds(left_ns);
    }
    CONVERGE_ASSIGN_OR_RETURN(RamSendStats s, sender_->Send(bitmaps, b));
    RamChannelStats out;
    out.pages = s.pages;
    out.zero_pages = s.zero_pages;
    out.records = s.records;
    out.wire_bytes = s.bytes;
    out.complete = s.complete;
    return out;
  }

 private:
  Clock& clock_;
  std::vector<GuestRegion> regions_;
  RamSenderChannelOptions options_;
  std::optional<RamSender> sender_;
};

}  // namespace

std::unique_ptr<RamChannel> MakeRamSenderChannel(
    Clock& clock, std::vector<GuestRegion> regions,
    const RamSenderChannelOptions& options) {
  for ([[maybe_unused]] const GuestRegion& r : regions) {
    assert(r.host != nullptr);
  }
  return std::make_unique<RamSenderChannel>(clock, std::move(regions),
                                            options);
}

}  // namespace converge
