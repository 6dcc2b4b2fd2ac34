#include "io/ram_sender.h"

#include "io/pipeline_fence.h"

#include <tbb/parallel_pipeline.h>

#include <algorithm>
#include <atomic>
#include <cassert>
#include <memory>
#include <mutex>

namespace converge {
namespace {

struct RamItem {
  uint32_t region = 0;
  uint64_t first_page = 0;
  uint32_t page_count = 0;
  EncodedPayload payload;
  Status status;
};

}  // namespace

RamSender::RamSender(StreamWriter& writer, std::vector<GuestRegion> regions,
                     const RamSenderOptions& options)
    : writer_(writer), regions_(std::move(regions)), options_(options) {
  assert(regions_.size() == writer_.layout().regions.size());
  assert(options_.pages_per_record > 0 &&
         options_.pages_per_record <= kMaxPagesPerRamRecord);
}

Result<RamSendStats> RamSender::Send(std::span<DirtyBitmap> bitmaps,
                                     const RamSendBudget& budget) {
  const StreamLayout& layout = writer_.layout();
  const uint32_t page_size = layout.page_size;
  if (bitmaps.size() != regions_.size()) {
    return InvalidArgumentError(std::to_string(bitmaps.size()) +
                                " bitmaps for " +
                                std::to_string(regions_.size()) + " regions");
  }
  if (uint64_t{options_.pages_per_record} * page_size > kMaxChunkBytes) {
    return InvalidArgumentError("pages_per_record * page size exceeds " +
                                std::to_string(kMaxChunkBytes) + " bytes");
  }
  for (size_t i = 0; i < regions_.size(); ++i) {
    const GuestRegion& r = regions_[i];
    if (r.gpa != layout.regions[i].gpa ||
        r.size_bytes != layout.regions[i].size_bytes || r.host == nullptr ||
        bitmaps[i].num_pages() != r.size_bytes / page_size) {
      return InvalidArgumentError(
          "region " + std::to_string(i) +
          " does not match the stream layout or its bitmap");
    }
  }
  // Runs are collected first: the output stage clears bits while the input
  // stage walks this list, never the bitmap itself.
  struct Run {
    uint32_t region;
    PageRun run;
  };
  std::vector<Run> runs;
  for (size_t i = 0; i < bitmaps.size(); ++i) {
    bitmaps[i].ForEachRun([&](PageRun r) {
      runs.push_back({static_cast<uint32_t>(i), r});
    });
  }

  RamSendStats stats;
  size_t run_index = 0;
  uint64_t run_offset = 0;
  std::mutex pool_mu;
  std::vector<std::unique_ptr<RamItem>> all;
  std::vector<RamItem*> free_items;
  Status output_error;
  std::atomic<bool> stop{false};
  PipelineFence();  // what the stages read is published

  tbb::parallel_pipeline(
      std::max<size_t>(1, options_.max_records_in_flight),
      tbb::make_filter<void, RamItem*>(
          tbb::filter_mode::serial_in_order,
          [&](tbb::flow_control& fc) -> RamItem* {
            const PipelineStage stage;
            if (stop.load(std::memory_order_relaxed) ||
                run_index == runs.size() ||
                std::chrono::steady_clock::now() >= budget.deadline) {
              fc.stop();
              return nullptr;
            }
            const Run& r = runs[run_index];
            const uint64_t count = std::min<uint64_t>(
                options_.pages_per_record, r.run.count - run_offset);
            RamItem* item;
            {
              std::lock_guard<std::mutex> lock(pool_mu);
              if (free_items.empty()) {
                all.push_back(std::make_unique<RamItem>());
                free_items.push_back(all.back().get());
              }
              item = free_items.back();
              free_items.pop_back();
            }
            item->region = r.region;
            item->first_page = r.run.first + run_offset;
            item->page_count = static_cast<uint32_t>(count);
            run_offset += count;
            if (run_offset == r.run.count) {
              ++run_index;
              run_offset = 0;
            }
            return item;
          }) &
          tbb::make_filter<RamItem*, RamItem*>(
              tbb::filter_mode::parallel,
              [&](RamItem* item) -> RamItem* {
                const PipelineStage stage;
                const uint8_t* pages = regions_[item->region].host +
                                       item->first_page * page_size;
                item->status = EncodeRamPayload(
                    writer_.codec(), item->region, item->first_page,
                    item->page_count, page_size, pages, item->payload);
                return item;
              }) &
          tbb::make_filter<RamItem*, void>(
              tbb::filter_mode::serial_in_order, [&](RamItem* item) {
                const PipelineStage stage;
                if (output_error.ok() && !stop.load()) {
                  output_error = item->status;
                  if (output_error.ok()) {
                    output_error = writer_.WriteRam(item->payload);
                  }
                  if (output_error.ok()) {
                    bitmaps[item->region].ClearRange(item->first_page,
                                                     item->page_count);
                    const uint64_t data_pages =
                        GetU32(item->payload.head.data() + 16);
                    stats.pages += item->page_count;
                    stats.zero_pages += item->page_count - data_pages;
                    ++stats.records;
                    stats.bytes += kRecordHeaderBytes +
                                   item->payload.head.size() +
                                   item->payload.body.size();
                    if (stats.bytes >= budget.max_bytes) stop.store(true);
                  } else {
                    stop.store(true);
                  }
                }
                std::lock_guard<std::mutex> lock(pool_mu);
                free_items.push_back(item);
              }));
  PipelineFence();  // what the stages wrote is visible
  if (!output_error.ok()) return output_error;
  stats.complete = true;
  for (const DirtyBitmap& b : bitmaps) {
    if (b.Count() != 0) {
      stats.complete = false;
      break;
    }
  }
  return stats;
}

}  // namespace converge
