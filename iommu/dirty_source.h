// DirtySource: one tracker of guest pages written since its last harvest
// (an IOMMU's dirty bits, a device's DMA log, KVM's dirty log or ring).
//
// Addresses are guest-physical. A source that works in IOVA space maps to
// GPA through its own table (identity by default). Harvest() speaks in the
// RAM bitmap's page size (given to Start); a source whose own page size is
// different rescales (a coarse dirty bit dirties every fine page under it).
//
// The contract every implementation keeps: NO BIT IS EVER LOST. If a harvest
// fails, the whole requested range is marked dirty in the output, the error
// is counted and kept in stats().last_error, and the error is returned with
// context naming the source and the range. A source whose log is lost on
// error (DMA logging) restarts tracking before it returns.
//
// Thread-safety: a source is used by one thread at a time.

#ifndef CONVERGE_IOMMU_DIRTY_SOURCE_H_
#define CONVERGE_IOMMU_DIRTY_SOURCE_H_

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "bitmap/dirty_bitmap.h"
#include "iommu/bit_range.h"

namespace converge {

// Guest-physical memory [gpa, gpa + bytes).
struct GpaRange {
  uint64_t gpa = 0;
  uint64_t bytes = 0;
};

struct DirtySourceLimits {
  // Granularity the source reports at; a power of two >= 4096.
  uint64_t page_size_bytes = 4096;
  // Harvest windows must start on a multiple of this many RAM pages
  // (KVM CLEAR_DIRTY_LOG: 64) except where a window ends a tracked range.
  uint64_t align_pages = 1;
  // Most RAM pages one kernel call covers (type1: max_dirty_bitmap_size).
  uint64_t max_pages_per_call = UINT64_MAX;
};

struct DirtySourceStats {
  uint64_t harvests = 0;          // Harvest() calls
  uint64_t kernel_calls = 0;      // kernel calls issued by harvests
  uint64_t pages_reported = 0;    // RAM pages the source reported dirty
  uint64_t harvest_ns = 0;        // wall time spent in Harvest()
  uint64_t errors = 0;            // failed harvests
  uint64_t pages_marked_on_error = 0;  // RAM pages set dirty because of them
  uint64_t restarts = 0;          // tracking restarted after a lost log
  Status last_error;              // the most recent failure, OK if none
};

class DirtySource {
 public:
  DirtySource() = default;
  DirtySource(const DirtySource&) = delete;
  DirtySource& operator=(const DirtySource&) = delete;
  virtual ~DirtySource() = default;

  // A short stable name for stats and messages ("vfio-type1", "kvm-log").
  virtual std::string_view name() const = 0;

  // Starts tracking `ranges`; the caller's bitmaps use ram_page_size bytes
  // per bit. REQUIRES: not started; ranges page aligned and disjoint.
  virtual Status Start(std::span<const GpaRange> ranges,
                       uint64_t ram_page_size) = 0;

  // ORs the dirty state of the num_pages RAM pages starting at gpa into
  // out, bit out_first_page onward. REQUIRES: started; the window lies in
  // one tracked range and fits in out.
  virtual Status Harvest(uint64_t gpa, uint64_t num_pages, DirtyBitmap& out,
                         uint64_t out_first_page) = 0;

  // Harvest() of the window into out from page 0, for a caller whose out
  // is clean there (a zeroed scratch window): a source may then have the
  // kernel write its report straight into out instead of through a bounce
  // buffer. Also appends to set_words, ascending, the index of every word
  // of out that holds a bit of the window, so that the caller visits only
  // those (on error too: the marked window is listed). Same contract as
  // Harvest() otherwise; the default forwards to it and scans the window.
  // REQUIRES: as Harvest() with out_first_page 0; the words of out holding
  // pages [0, num_pages) are zero.
  virtual Status HarvestIntoZeroed(uint64_t gpa, uint64_t num_pages,
                                   DirtyBitmap& out,
                                   std::vector<uint64_t>& set_words) {
    Status s = Harvest(gpa, num_pages, out, 0);
    if (num_pages <= out.num_pages()) {
      ListSetWords(out.words().data(), (num_pages + 63) / 64, set_words);
    }
    return s;
  }

  // Re-arms tracking for a window just before its pages are sent (KVM
  // manual protect: CLEAR_DIRTY_LOG). Sources that clear on report do
  // nothing.
  virtual Status Rearm(uint64_t /*gpa*/, uint64_t /*num_pages*/) {
    return OkStatus();
  }

  // Stops tracking. Safe to call when not started.
  virtual Status Stop() = 0;

  virtual DirtySourceLimits limits() const = 0;
  const DirtySourceStats& stats() const { return stats_; }

 protected:
  DirtySourceStats stats_;
};

}  // namespace converge

#endif  // CONVERGE_IOMMU_DIRTY_SOURCE_H_
