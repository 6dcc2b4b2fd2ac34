// DrainToStream: device data from a DeviceDrain, compressed on TBB and
// framed in order onto a StreamWriter.
//
// A tbb::parallel_pipeline of three stages: a serial_in_order input stage
// takes the next completed chunk from the drain (io_uring keeps one read per
// device in flight meanwhile), a parallel stage encodes chunks (compresses
// them and takes their hashes: the record's payload hash and the chunk's
// hash for the end-of-device digest), and a serial_in_order output stage
// frames them (the writer's transport sends while the next chunks encode).
// With codec none the parallel stage still does the hashing, every byte's
// real work besides the read. Per-device byte order is the drain's order;
// the output order equals the input order.
//
// Thread-safety: the call blocks its thread and uses TBB worker threads;
// drain and writer must not be used by anyone else meanwhile.

#ifndef CONVERGE_IO_COMPRESS_PIPELINE_H_
#define CONVERGE_IO_COMPRESS_PIPELINE_H_

#include <cstddef>
#include <cstdint>

#include "base/status.h"
#include "io/device_drain.h"
#include "io/stream_writer.h"

namespace converge {

struct PipelineOptions {
  // Chunks in the pipeline at once (tokens). More overlap, and that many
  // chunk buffers plus compressed copies of memory. Keep it below the
  // drain's buffer pool minus one buffer per device.
  size_t max_chunks_in_flight = 8;
};

struct DrainStats {
  uint64_t chunks = 0;
  uint64_t bytes = 0;          // device bytes read
  uint64_t encoded_bytes = 0;  // payload bytes after compression
};

// Runs until the drain has nothing more (every device ended in STOP_COPY,
// or idle in PRE_COPY). Stops at the first error.
[[nodiscard]] Result<DrainStats> DrainToStream(
    DeviceDrain& drain, StreamWriter& writer,
    const PipelineOptions& options = {});

}  // namespace converge

#endif  // CONVERGE_IO_COMPRESS_PIPELINE_H_
