#include "sim/model_ram_channel.h"

#include <algorithm>
#include <cassert>
#include <string>

namespace converge::sim {

ModelRamChannel::ModelRamChannel(VirtualClock& clock, const LinkModel& link,
                                 const ContentModel& content,
                                 std::vector<GuestRegion> regions,
                                 const ModelRamChannelOptions& options)
    : link_clock_(clock, link),
      content_(content),
      regions_(std::move(regions)),
      options_(options) {
  assert(options.pages_per_record > 0);
  assert(options.page_size_bytes > 0);
}

Status ModelRamChannel::Attach(StreamWriter& /*writer*/) { return OkStatus(); }

Result<RamChannelStats> ModelRamChannel::Send(std::span<DirtyBitmap> bitmaps,
                                              const RamChannelBudget& budget) {
  if (bitmaps.size() != regions_.size()) {
    return InvalidArgumentError(
        "model RAM channel: " + std::to_string(bitmaps.size()) +
        " bitmaps for " + std::to_string(regions_.size()) + " regions");
  }
  const uint64_t page = options_.page_size_bytes;
  for (size_t i = 0; i < regions_.size(); ++i) {
    if (bitmaps[i].num_pages() != regions_[i].size_bytes / page) {
      return InvalidArgumentError(
          "model RAM channel: bitmap " + std::to_string(i) + " has " +
          std::to_string(bitmaps[i].num_pages()) + " pages, region has " +
          std::to_string(regions_[i].size_bytes / page));
    }
  }

  VirtualClock& clock = link_clock_.clock();
  RamChannelStats stats;
  bool stopped = false;
  for (size_t i = 0; i < regions_.size() && !stopped; ++i) {
    DirtyBitmap& bitmap = bitmaps[i];
    const uint64_t base_page = regions_[i].gpa / page;
    uint64_t p = bitmap.FindNextDirty(0);
    while (p < bitmap.num_pages()) {
      if (stats.wire_bytes >= budget.max_bytes ||
          clock.NowNs() >= budget.deadline_ns) {
        stopped = true;
        break;
      }
      // One record: up to pages_per_record consecutive dirty pages.
      const uint64_t limit =
          std::min<uint64_t>(bitmap.num_pages(), p + options_.pages_per_record);
      uint64_t end = p;
      uint64_t record_bytes = 0;
      while (end < limit && bitmap.Test(end)) {
        PageClass cls = content_.ClassOf(base_page + end);
        if (cls == PageClass::kZero) ++stats.zero_pages;
        record_bytes += content_.WireBytes(cls);
        ++end;
      }
      bitmap.ClearRange(p, end - p);
      link_clock_.ChargeBytes(record_bytes);
      stats.pages += end - p;
      stats.wire_bytes += record_bytes;
      ++stats.records;
      p = bitmap.FindNextDirty(end);
    }
  }
  if (stats.records > 0) link_clock_.ChargeLatency();
  // Stopping needs a dirty page left, so a run that did not stop sent all.
  stats.complete = !stopped;
  total_pages_ += stats.pages;
  total_zero_pages_ += stats.zero_pages;
  total_wire_bytes_ += stats.wire_bytes;
  return stats;
}

}  // namespace converge::sim
