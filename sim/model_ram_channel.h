// ModelRamChannel: the RAM data plane of `converge-bench model`. It walks
// the engine's dirty bitmaps as the real channel does (a record per window
// of pages_per_record pages holding dirty pages, bits cleared as pages go,
// the budget checked between records), but reads no memory: each page
// costs the wire bytes its ContentModel class costs, and moving them
// advances the VirtualClock at the LinkModel's bandwidth. The bitmaps are
// walked a word at a time, so a 1 TiB first pass takes about a second.
//
// Thread-safety: none; the engine's thread calls Send().

#ifndef CONVERGE_SIM_MODEL_RAM_CHANNEL_H_
#define CONVERGE_SIM_MODEL_RAM_CHANNEL_H_

#include <cstdint>
#include <span>
#include <vector>

#include "base/status.h"
#include "bitmap/dirty_bitmap.h"
#include "engine/ram_channel.h"
#include "io/guest_memory.h"
#include "sim/link_model.h"
#include "sim/link_transport.h"
#include "sim/virtual_clock.h"

namespace converge::sim {

struct ModelRamChannelOptions {
  // Pages per modelled RAM record window (rounded up to 64); the budget is
  // checked between records, so larger records overshoot a budget by more.
  uint32_t pages_per_record = 256;
  // Bytes per bitmap bit; a region's first page is gpa / page_size_bytes.
  uint64_t page_size_bytes = 4096;
};

class ModelRamChannel final : public RamChannel {
 public:
  // regions: the engine's regions (host mappings unused and may be null).
  // clock, link and content must outlive the channel.
  // REQUIRES: link.bandwidth_bps() > 0; options.pages_per_record > 0.
  ModelRamChannel(VirtualClock& clock, const LinkModel& link,
                  const ContentModel& content,
                  std::vector<GuestRegion> regions,
                  const ModelRamChannelOptions& options = {});

  // Writes no records: nothing to attach to.
  Status Attach(StreamWriter& writer) override;
  // Errors: a bitmap count or size not matching the regions.
  Result<RamChannelStats> Send(std::span<DirtyBitmap> bitmaps,
                               const RamChannelBudget& budget) override;

  // Totals over every Send().
  uint64_t total_pages() const { return total_pages_; }
  uint64_t total_zero_pages() const { return total_zero_pages_; }
  uint64_t total_wire_bytes() const { return total_wire_bytes_; }

 private:
  LinkClock link_clock_;
  const ContentModel& content_;
  std::vector<GuestRegion> regions_;
  const ModelRamChannelOptions options_;
  uint64_t total_pages_ = 0;
  uint64_t total_zero_pages_ = 0;
  uint64_t total_wire_bytes_ = 0;
};

}  // namespace converge::sim

#endif  // CONVERGE_SIM_MODEL_RAM_CHANNEL_H_
