// RamSender: dirty guest pages -> RAM records on a StreamWriter.
//
// Dirty runs come from one DirtyBitmap per region (ForEachRun), are cut
// into records of at most pages_per_record pages, read from guest memory,
// zero pages elided, compressed on TBB (a parallel stage between two
// serial_in_order stages) and framed in order. A budget (bytes or a
// deadline) lets one pre-copy iteration stop part way; the bits of every
// page sent are cleared, so the next call resumes where this one stopped.
//
// Thread-safety: Send() blocks its thread and uses TBB workers; the writer
// and bitmaps must not be used by anyone else meanwhile. Guest memory may
// change under it (a page written during the send is dirty again in the
// tracker and is resent later).

#ifndef CONVERGE_IO_RAM_SENDER_H_
#define CONVERGE_IO_RAM_SENDER_H_

#include <chrono>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "base/status.h"
#include "bitmap/dirty_bitmap.h"
#include "io/guest_memory.h"
#include "io/stream_writer.h"

namespace converge {

struct RamSenderOptions {
  // Pages per RAM record: larger records compress better and hold more
  // memory per record in flight (pages_per_record * page size).
  uint32_t pages_per_record = 256;
  // Records in the pipeline at once.
  size_t max_records_in_flight = 8;
};

struct RamSendBudget {
  // Stop once this many stream bytes were written by this call.
  uint64_t max_bytes = std::numeric_limits<uint64_t>::max();
  // Stop after this time.
  std::chrono::steady_clock::time_point deadline =
      std::chrono::steady_clock::time_point::max();
};

struct RamSendStats {
  uint64_t pages = 0;       // pages sent (zero pages included)
  uint64_t zero_pages = 0;  // pages sent as a bit in a zero map
  uint64_t records = 0;
  uint64_t bytes = 0;       // stream bytes written
  bool complete = false;    // no dirty page left in the bitmaps
};

class RamSender {
 public:
  // regions[i] is the host view of the writer's stream region i.
  // REQUIRES: regions match writer.layout().regions (same GPA and size).
  RamSender(StreamWriter& writer, std::vector<GuestRegion> regions,
            const RamSenderOptions& options = {});
  RamSender(const RamSender&) = delete;
  RamSender& operator=(const RamSender&) = delete;

  // Sends the pages dirty in bitmaps (bitmaps[i] covers region i, page 0 =
  // its first page), clearing their bits, until done or the budget is
  // spent.
  [[nodiscard]] Result<RamSendStats> Send(std::span<DirtyBitmap> bitmaps,
                                          const RamSendBudget& budget = {});

 private:
  StreamWriter& writer_;
  std::vector<GuestRegion> regions_;
  RamSenderOptions options_;
};

}  // namespace converge

#endif  // CONVERGE_IO_RAM_SENDER_H_
