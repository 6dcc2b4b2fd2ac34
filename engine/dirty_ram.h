// DirtyRam: the source's view of which guest pages still have to be sent.
// It owns the DirtyTracker (and so the dirty sources' harvest), the pending
// bitmaps (dirty and not yet sent), the last k harvests for the writable
// working set, and the chunked re-arm: a chunk of RAM is re-armed in every
// source (KVM CLEAR_DIRTY_LOG) just before its pages are handed to the
// RamChannel, so a write after that point is caught by the next sync.
//
// Nothing is lost: a page leaves the pending set only when the channel
// reports it sent, and it was re-armed before it was read; a failing
// source marks its window dirty (DirtySource contract).
//
// Thread-safety: not thread-safe; the engine's thread owns it.

#ifndef CONVERGE_ENGINE_DIRTY_RAM_H_
#define CONVERGE_ENGINE_DIRTY_RAM_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "base/status.h"
#include "engine/ram_channel.h"
#include "io/guest_memory.h"
#include "iommu/dirty_source.h"

namespace converge {

class DirtyRam {
 public:
  struct Options {
    uint64_t page_bytes = 4096;
    uint64_t harvest_chunk_pages = uint64_t{1} << 18;
    // Pages re-armed and sent at a time (a multiple of 64); 0 = all RAM.
    uint64_t rearm_chunk_pages = uint64_t{1} << 18;
    // k harvests kept for the writable working set (>= 1).
    uint32_t wws_syncs = 3;
  };

  struct SyncResult {
    uint64_t dirtied_pages = 0;  // union harvested by this sync
    uint64_t pending_pages = 0;  // to send, after it
    uint64_t wws_pages = 0;      // harvested by each of the last k syncs
    std::vector<uint64_t> source_pages;  // per source, this sync
    Status source_error;  // the first failing source's error, if any
  };

  // REQUIRES: regions page aligned, non-empty, disjoint.
  DirtyRam(const std::vector<GuestRegion>& regions, const Options& options);
  DirtyRam(const DirtyRam&) = delete;
  DirtyRam& operator=(const DirtyRam&) = delete;
  ~DirtyRam();  // stops the sources

  // REQUIRES: not started; source != nullptr.
  void AddSource(DirtySource* source);
  // Starts every source; every page becomes pending (the first pass).
  [[nodiscard]] Status Start();
  // Harvests every source into the pending set. A failing source does not
  // fail the sync: its windows are pending and its error is in the result.
  // REQUIRES: started.
  [[nodiscard]] SyncResult Sync();
  // Sends pending pages through channel, a re-arm chunk at a time (re-arm
  // skipped when rearm is false: the vCPUs are paused), until none is left
  // or the budget is spent. REQUIRES: started.
  [[nodiscard]] Result<RamChannelStats> Send(RamChannel& channel,
                                             const RamChannelBudget& budget,
                                             bool rearm);
  // Stops every source; returns the first error. Safe when not started.
  Status Stop();

  bool started() const;
  uint64_t pending_pages() const;
  uint64_t rearm_errors() const;

 private:
  struct Rep;
  std::unique_ptr<Rep> rep_;
};

}  // namespace converge

#endif  // CONVERGE_ENGINE_DIRTY_RAM_H_
