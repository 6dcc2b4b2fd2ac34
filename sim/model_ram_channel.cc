#include "sim/model_ram_channel.h"

#include <algorithm>
#include <bit>
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
  const uint64_t zero_bytes = content_.WireBytes(PageClass::kZero);
  const uint64_t text_bytes = content_.WireBytes(PageClass::kText);
  const uint64_t random_bytes = content_.WireBytes(PageClass::kRandom);
  // A record: the dirty pages of a window of pages_per_record pages
  // (rounded up to whole bitmap words) from a dirty page on, walked a word
  // at a time.
  const uint64_t words_per_record = (options_.pages_per_record + 63) / 64;
  RamChannelStats stats;
  bool stopped = false;
  for (size_t i = 0; i < regions_.size() && !stopped; ++i) {
    std::span<uint64_t> words = bitmaps[i].words();
    const uint64_t base_page = regions_[i].gpa / page;
    const uint64_t num_pages = bitmaps[i].num_pages();
    // Empty stretches are skipped by FindNextDirty (word-parallel).
    uint64_t p = bitmaps[i].FindNextDirty(0);
    while (p < num_pages) {
      const uint64_t w = p / 64;
      const uint64_t w_end =
          std::min<uint64_t>(words.size(), w + words_per_record);
      uint64_t counts[3] = {0, 0, 0};  // zero, text, random
      for (uint64_t k = w; k < w_end; ++k) {
        for (uint64_t bits = words[k]; bits != 0; bits &= bits - 1) {
          const uint64_t bit = static_cast<uint64_t>(std::countr_zero(bits));
          PageClass cls = content_.ClassOf(base_page + k * 64 + bit);
          ++counts[static_cast<int>(cls)];
        }
      }
      const uint64_t pages = counts[0] + counts[1] + counts[2];
      if (stats.wire_bytes >= budget.max_bytes ||
          clock.NowNs() >= budget.deadline_ns) {
        stopped = true;
        break;
      }
      std::fill(words.begin() + static_cast<ptrdiff_t>(w),
                words.begin() + static_cast<ptrdiff_t>(w_end), 0);
      const uint64_t record_bytes = counts[0] * zero_bytes +
                                    counts[1] * text_bytes +
                                    counts[2] * random_bytes;
      link_clock_.ChargeBytes(record_bytes);
      stats.pages += pages;
      stats.zero_pages += counts[0];
      stats.wire_bytes += record_bytes;
      ++stats.records;
      p = bitmaps[i].FindNextDirty(std::min(num_pages, w_end * 64));
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
