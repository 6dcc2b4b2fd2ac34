#include "io/compress_pipeline.h"

#include "io/pipeline_fence.h"

#include <tbb/parallel_pipeline.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

namespace converge {
namespace {

struct Item {
  DrainChunk chunk;
  EncodedPayload payload;
  Status status;
};

// Items are recycled so their compression buffers keep their capacity.
class ItemPool {
 public:
  Item* Take() {
    std::lock_guard<std::mutex> lock(mu_);
    if (free_.empty()) {
      all_.push_back(std::make_unique<Item>());
      return all_.back().get();
    }
    Item* item = free_.back();
    free_.pop_back();
    return item;
  }
  void Give(Item* item) {
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(item);
  }

 private:
  std::mutex mu_;
  std::vector<std::unique_ptr<Item>> all_;
  std::vector<Item*> free_;
};

// Frames an encoded chunk and counts it.
Status WriteItem(StreamWriter& writer, const Item& item, DrainStats& stats) {
  CONVERGE_RETURN_IF_ERROR(
      writer.WriteDeviceData(item.chunk.device_id, item.payload));
  ++stats.chunks;
  stats.bytes += item.chunk.bytes.size();
  stats.encoded_bytes += item.payload.head.size() + item.payload.body.size();
  return OkStatus();
}

}  // namespace

Result<DrainStats> DrainToStream(DeviceDrain& drain, StreamWriter& writer,
                                 const PipelineOptions& options) {
  if (options.max_chunks_in_flight == 0) {
    return InvalidArgumentError("max_chunks_in_flight must be > 0");
  }
  ItemPool pool;
  DrainStats stats;
  // Each serial stage owns its own error; failed tells the input stage to
  // stop once the output stage has failed.
  Status input_error;
  Status output_error;
  std::atomic<bool> failed{false};
  const CodecOptions codec = writer.codec();
  PipelineFence();  // what the stages read is published

  tbb::parallel_pipeline(
      options.max_chunks_in_flight,
      tbb::make_filter<void, Item*>(
          tbb::filter_mode::serial_in_order,
          [&](tbb::flow_control& fc) -> Item* {
            const PipelineStage stage;
            if (failed.load(std::memory_order_relaxed)) {
              fc.stop();
              return nullptr;
            }
            Result<std::optional<DrainChunk>> next = drain.Next();
            if (!next.ok() || !next->has_value()) {
              if (!next.ok()) input_error = next.status();
              fc.stop();
              return nullptr;
            }
            Item* item = pool.Take();
            item->chunk = **next;
            item->status = OkStatus();
            return item;
          }) &
          tbb::make_filter<Item*, Item*>(
              tbb::filter_mode::parallel,
              [&](Item* item) -> Item* {
                const PipelineStage stage;
                item->status = EncodeDevicePayload(
                    codec, item->chunk.device_id, item->chunk.sequence,
                    item->chunk.bytes, item->payload);
                return item;
              }) &
          tbb::make_filter<Item*, void>(
              tbb::filter_mode::serial_in_order, [&](Item* item) {
                const PipelineStage stage;
                if (output_error.ok() && !item->status.ok()) {
                  output_error = item->status;
                  failed.store(true);
                }
                if (output_error.ok()) {
                  output_error = WriteItem(writer, *item, stats);
                  if (!output_error.ok()) failed.store(true);
                }
                drain.Release(item->chunk);
                pool.Give(item);
              }));
  PipelineFence();  // what the stages wrote is visible
  if (!input_error.ok()) return input_error;
  if (!output_error.ok()) return output_error;
  return stats;
}

}  // namespace converge
