// DirtyTracker: the guest's RAM regions, one DirtyBitmap each (4 KiB pages
// by default), and the dirty sources that feed them. Sync() harvests every
// source over every region and ORs the result into the region bitmaps: a
// true union of the IOMMU, device and vCPU trackers, with per-source
// accounting of how many pages each reported and how many ONLY it reported.
//
// How a Sync works: each region is walked in windows (Options::
// chunk_pages, cut to the sources' limits and alignment). Every source
// harvests a window into its own scratch bitmap, which is clean at that
// point (DirtySource::HarvestIntoZeroed): a source can have the kernel
// write its report straight into it, and it lists the words it set, found
// with the dispatched vector scan while they are still in cache. One merge
// pass over the listed words then ORs the union into the region bitmap,
// counts per source its bits and the bits no other source set (popcount of
// v & ~seen_twice), and clears the scratch words again. A clean word costs
// one vector compare, and a window nobody dirtied writes neither the
// region bitmap nor the scratch.
//
// Errors: a failing source never stops a Sync. Its window is already
// marked dirty by the source (the DirtySource contract), every other chunk
// and source is still harvested, the error is counted in that source's
// stats, and Sync() returns the first error (with the source's context)
// once everything is harvested. The bitmaps are complete either way.
//
// Sources are not owned: each must outlive the tracker and is used only by
// it while started.
//
// Thread-safety: one thread at a time. Sources may be fed concurrently by
// their kernels (device DMA); the tracker itself is not shared.

#ifndef CONVERGE_IOMMU_DIRTY_TRACKER_H_
#define CONVERGE_IOMMU_DIRTY_TRACKER_H_

#include <cstdint>
#include <vector>

#include "base/status.h"
#include "bitmap/dirty_bitmap.h"
#include "iommu/dirty_source.h"

namespace converge {

// Guest RAM [gpa, gpa + bytes), optionally mapped at host in this process.
struct RamRegion {
  uint64_t gpa = 0;
  uint64_t bytes = 0;
  void* host = nullptr;
};

// Per-source results of Sync(), for one sync and summed over all.
struct SourceSyncStats {
  uint64_t pages_reported = 0;  // pages the source reported dirty
  uint64_t pages_unique = 0;    // of those, pages no other source reported
  uint64_t errors = 0;          // failed harvest windows
  Status first_error;           // the first of them, OK if none
};

class DirtyTracker {
 public:
  struct Options {
    // Bytes per bit of the region bitmaps.
    uint64_t ram_page_bytes = 4096;
    // RAM pages per harvest window (rounded to 64 and to the sources'
    // alignment, cut to their max_pages_per_call). Each source keeps a
    // scratch bitmap of chunk_pages / 8 bytes; 2^18 pages (1 GiB of RAM,
    // 32 KiB of bitmap) keeps all of them in L2.
    uint64_t chunk_pages = uint64_t{1} << 18;
  };

  // REQUIRES: regions page aligned, non-empty, disjoint.
  explicit DirtyTracker(std::vector<RamRegion> regions);
  DirtyTracker(std::vector<RamRegion> regions, Options options);
  DirtyTracker(const DirtyTracker&) = delete;
  DirtyTracker& operator=(const DirtyTracker&) = delete;
  ~DirtyTracker();

  // Adds a source (not owned). REQUIRES: not started; source != nullptr.
  void AddSource(DirtySource* source);

  // Starts every source over every region. On failure the sources already
  // started are stopped again.
  [[nodiscard]] Status Start();
  // Harvests every source into the region bitmaps (see the class comment
  // for errors). REQUIRES: started.
  [[nodiscard]] Status Sync();
  // Forwards to every source's Rearm() for pages [first_page, first_page +
  // count) of region (KVM manual protect); returns the first error.
  // REQUIRES: started; the pages inside the region.
  [[nodiscard]] Status Rearm(size_t region, uint64_t first_page,
                             uint64_t count);
  // Stops every source; returns the first error. Safe when not started.
  Status Stop();

  size_t num_regions() const { return regions_.size(); }
  const RamRegion& region(size_t i) const { return regions_[i]; }
  DirtyBitmap& bitmap(size_t region) { return bitmaps_[region]; }
  const DirtyBitmap& bitmap(size_t region) const { return bitmaps_[region]; }

  size_t num_sources() const { return sources_.size(); }
  DirtySource& source(size_t i) { return *sources_[i]; }
  const SourceSyncStats& last_sync(size_t source) const {
    return last_[source];
  }
  const SourceSyncStats& cumulative(size_t source) const {
    return total_[source];
  }
  // The window size Sync() uses (valid once started).
  uint64_t chunk_pages() const { return chunk_pages_; }

 private:
  // Harvests one window of one region into the scratch bitmaps and merges.
  Status SyncWindow(size_t region, uint64_t first_page, uint64_t pages);
  // For every word listed in set_words_: ORs the scratch words into dst,
  // counts them into last_, and clears them. REQUIRES: every set scratch
  // word is listed (the sources' HarvestIntoZeroed contract).
  void MergeSetWords(uint64_t* dst);

  const Options options_;
  std::vector<RamRegion> regions_;
  std::vector<DirtyBitmap> bitmaps_;
  std::vector<DirtySource*> sources_;
  std::vector<DirtyBitmap> scratch_;  // one per source, chunk_pages_ bits,
                                      // all clean between windows
  std::vector<uint64_t*> scratch_words_;  // their words, for the merge
  std::vector<uint64_t> set_words_;  // the window's set scratch words,
                                     // as the sources listed them
  std::vector<SourceSyncStats> last_, total_;
  uint64_t chunk_pages_ = 0;
  bool started_ = false;
};

}  // namespace converge

#endif  // CONVERGE_IOMMU_DIRTY_TRACKER_H_
