// RamChannel: the RAM data plane of the PrecopyEngine. The engine decides
// WHICH pages go (dirty bitmaps, re-armed a chunk at a time); the channel
// moves them. The real channel (MakeRamSenderChannel) reads guest memory
// through io/RamSender and frames RAM records on the engine's StreamWriter;
// `converge-bench model` plugs in a channel that charges modelled wire
// bytes over a modelled link by advancing a virtual clock instead.
//
// Time: budgets carry deadlines on the engine's injected Clock, never on
// std::chrono::steady_clock, so a channel on a virtual clock stops at the
// same virtual instant the engine planned.
//
// Thread-safety: Send() is called from the engine's thread only; a channel
// may use worker threads internally.

#ifndef CONVERGE_ENGINE_RAM_CHANNEL_H_
#define CONVERGE_ENGINE_RAM_CHANNEL_H_

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "bitmap/dirty_bitmap.h"
#include "io/guest_memory.h"

namespace converge {

class StreamWriter;

// Where one Send() must stop.
struct RamChannelBudget {
  // Stop once this many stream (wire) bytes were produced by this call.
  uint64_t max_bytes = std::numeric_limits<uint64_t>::max();
  // Stop once the engine's Clock reads at least this (NowNs()).
  uint64_t deadline_ns = std::numeric_limits<uint64_t>::max();
};

// What one Send() moved.
struct RamChannelStats {
  uint64_t pages = 0;       // pages sent, zero pages included
  uint64_t zero_pages = 0;  // of those, sent as a bit in a zero map
  uint64_t records = 0;     // RAM records framed
  uint64_t wire_bytes = 0;  // stream bytes produced
  bool complete = false;    // no dirty bit left in the bitmaps given
};

class RamChannel {
 public:
  RamChannel() = default;
  RamChannel(const RamChannel&) = delete;
  RamChannel& operator=(const RamChannel&) = delete;
  virtual ~RamChannel() = default;

  // Called once by PrecopyEngine::Start() with the writer that frames the
  // stream (after the stream header). A channel that writes no records
  // (a model) may ignore it. The writer outlives every later Send().
  [[nodiscard]] virtual Status Attach(StreamWriter& writer) = 0;

  // Sends the pages dirty in bitmaps (bitmaps[i] covers the engine's
  // region i, bit 0 = its first page) and clears the bit of every page
  // sent, until none is left or the budget is spent. The next call resumes
  // with what is still set. REQUIRES: Attach() succeeded.
  [[nodiscard]] virtual Result<RamChannelStats> Send(
      std::span<DirtyBitmap> bitmaps, const RamChannelBudget& budget) = 0;
};

struct RamSenderChannelOptions {
  // Pages per RAM record: larger records compress better and hold more
  // memory per record in flight (pages_per_record * page size).
  uint32_t pages_per_record = 256;
  // Records in the compression pipeline at once.
  size_t max_records_in_flight = 8;
};

// The real channel: io/RamSender over `regions` (host mappings required),
// with deadlines converted from `clock`. `clock` must outlive the channel.
// REQUIRES: every region has a host mapping.
[[nodiscard]] std::unique_ptr<RamChannel> MakeRamSenderChannel(
    Clock& clock, std::vector<GuestRegion> regions,
    const RamSenderChannelOptions& options = {});

}  // namespace converge

#endif  // CONVERGE_ENGINE_RAM_CHANNEL_H_
