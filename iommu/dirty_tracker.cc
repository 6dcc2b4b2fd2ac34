#include "iommu/dirty_tracker.h"

#include <algorithm>
#include <bit>
#include <cassert>
#include <numeric>
#include <string>

#include "bitmap/word_ops.h"


namespace converge {

DirtyTracker::DirtyTracker(std::vector<RamRegion> regions)
    : DirtyTracker(std::move(regions), Options()) {}

DirtyTracker::DirtyTracker(std::vector<RamRegion> regions, Options options)
    : options_(options), regions_(std::move(regions)) {
  assert(std::has_single_bit(options_.ram_page_bytes));
  bitmaps_.reserve(regions_.size());
  for (const RamRegion& r : regions_) {
    assert(r.bytes != 0 && r.gpa % options_.ram_page_bytes == 0 &&
           r.bytes % options_.ram_page_bytes == 0);
    bitmaps_.emplace_back(r.bytes / options_.ram_page_bytes);
  }
}

DirtyTracker::~DirtyTracker() { (void)Stop(); }

void DirtyTracker::AddSource(DirtySource* source) {
  assert(source != nullptr);
  assert(!started_);
  sources_.push_back(source);
  last_.emplace_back();
  total_.emplace_back();
}

Status DirtyTracker::Start() {
  assert(!started_);
  std::vector<GpaRange> ranges;
  for (const RamRegion& r : regions_) ranges.push_back(GpaRange{r.gpa, r.bytes});
  for (size_t i = 0; i < sources_.size(); ++i) {
    Status s = sources_[i]->Start(ranges, options_.ram_page_bytes);
    if (!s.ok()) {
      for (size_t j = 0; j < i; ++j) (void)sources_[j]->Stop();
      return s.WithContext("DirtyTracker: start source " +
                           std::string(sources_[i]->name()));
    }
  }
  // One window size for all sources (their scratch bitmaps line up word
  // for word): a multiple of 64 pages and of every source's alignment,
  // within every source's per-call limit where that allows.
  uint64_t align = 64;
  uint64_t max_pages = std::max<uint64_t>(options_.chunk_pages, 64);
  for (DirtySource* src : sources_) {
    const DirtySourceLimits lim = src->limits();
    const uint64_t a = std::max<uint64_t>(
        lim.align_pages, lim.page_size_bytes / options_.ram_page_bytes);
    align = std::lcm(align, std::max<uint64_t>(a, 1));
    max_pages = std::min(max_pages, lim.max_pages_per_call);
  }
  chunk_pages_ = std::max(align, max_pages / align * align);
  scratch_.assign(sources_.size(), DirtyBitmap(chunk_pages_));
  scratch_words_.clear();
  for (DirtyBitmap& sc : scratch_) scratch_words_.push_back(sc.words().data());
  started_ = true;
  return OkStatus();
}

Status DirtyTracker::Stop() {
  if (!started_) return OkStatus();
  Status first;
  for (DirtySource* src : sources_) {
    Status s = src->Stop();
    if (first.ok() && !s.ok()) first = s;
  }
  started_ = false;
  return first;
}

Status DirtyTracker::Rearm(size_t region, uint64_t first_page,
                           uint64_t count) {
  assert(started_);
  assert(region < regions_.size());
  assert(first_page + count <= bitmaps_[region].num_pages());
  const uint64_t gpa =
      regions_[region].gpa + first_page * options_.ram_page_bytes;
  Status first;
  for (DirtySource* src : sources_) {
    Status s = src->Rearm(gpa, count);
    if (first.ok() && !s.ok()) first = s;
  }
  return first;
}

Status DirtyTracker::Sync() {
  assert(started_);
  for (SourceSyncStats& s : last_) s = SourceSyncStats();
  Status first;
  for (size_t r = 0; r < regions_.size(); ++r) {
    const uint64_t pages = bitmaps_[r].num_pages();
    for (uint64_t p = 0; p < pages; p += chunk_pages_) {
      Status s = SyncWindow(r, p, std::min(chunk_pages_, pages - p));
      if (first.ok() && !s.ok()) first = s;
    }
  }
  for (size_t i = 0; i < sources_.size(); ++i) {
    SourceSyncStats& t = total_[i];
    t.pages_reported += last_[i].pages_reported;
    t.pages_unique += last_[i].pages_unique;
    t.errors += last_[i].errors;
    if (t.first_error.ok()) t.first_error = last_[i].first_error;
  }
  return first;
}

Status DirtyTracker::SyncWindow(size_t region, uint64_t first_page,
                                uint64_t pages) {
  const uint64_t gpa =
      regions_[region].gpa + first_page * options_.ram_page_bytes;
  set_words_.clear();
  Status first;
  for (size_t i = 0; i < sources_.size(); ++i) {
    Status s =
        sources_[i]->HarvestIntoZeroed(gpa, pages, scratch_[i], set_words_);
    if (!s.ok()) {
      ++last_[i].errors;
      if (last_[i].first_error.ok()) last_[i].first_error = s;
      if (first.ok()) first = s;
    }
  }
  // first_page is a multiple of chunk_pages_, itself a multiple of 64.
  MergeSetWords(bitmaps_[region].words().data() + first_page / 64);
#ifndef NDEBUG
  for (uint64_t* sc : scratch_words_) {
    assert(word_ops::Active().find_word_not(sc, 0, (pages + 63) / 64, 0) ==
               (pages + 63) / 64 &&
           "a source set a scratch word it did not list");
  }
#endif
  return first;
}

void DirtyTracker::MergeSetWords(uint64_t* dst) {
  uint64_t* const* sc = scratch_words_.data();
  const size_t n = scratch_words_.size();
  // A word set by several sources is listed once per source; the first
  // visit merges and clears it, the others find it clean.
  for (const uint64_t j : set_words_) {
    assert(j < chunk_pages_ / 64);
    uint64_t once = 0, twice = 0;
    for (size_t i = 0; i < n; ++i) {
      const uint64_t v = sc[i][j];
      twice |= once & v;
      once |= v;
    }
    if (once == 0) continue;
    dst[j] |= once;
    for (size_t i = 0; i < n; ++i) {
      const uint64_t v = sc[i][j];
      if (v == 0) continue;
      last_[i].pages_reported += static_cast<uint64_t>(std::popcount(v));
      last_[i].pages_unique +=
          static_cast<uint64_t>(std::popcount(v & ~twice));
      sc[i][j] = 0;
    }
  }
}

}  // namespace converge
