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
  const uint64_t words = (pages + 63) / 64;
  const uint64_t gpa =
      regions_[region].gpa + first_page * options_.ram_page_bytes;
  Status first;
  for (size_t i = 0; i < sources_.size(); ++i) {
    uint64_t* sc = scratch_[i].words().data();
    std::fill(sc, sc + words, 0);
    Status s = sources_[i]->Harvest(gpa, pages, scratch_[i], 0);
    if (!s.ok()) {
      ++last_[i].errors;
      if (last_[i].first_error.ok()) last_[i].first_error = s;
      if (first.ok()) first = s;
    }
  }
  // first_page is a multiple of chunk_pages_, itself a multiple of 64.
  uint64_t* dst = bitmaps_[region].words().data() + first_page / 64;
  const size_t n = sources_.size();
  if (n == 1) {
    const uint64_t* sc = scratch_[0].words().data();
    const uint64_t c = word_ops::Active().popcount_words(sc, words);
    word_ops::Active().or_words(dst, sc, words);
    last_[0].pages_reported += c;
    last_[0].pages_unique += c;
    return first;
  }
  constexpr size_t kMaxInline = 8;
  const uint64_t* inline_ptrs[kMaxInline];
  std::vector<const uint64_t*> heap_ptrs;
  const uint64_t** sc = inline_ptrs;
  if (n > kMaxInline) {
    heap_ptrs.resize(n);
    sc = heap_ptrs.data();
  }
  for (size_t i = 0; i < n; ++i) sc[i] = scratch_[i].words().data();
  for (uint64_t j = 0; j < words; ++j) {
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
      last_[i].pages_reported += static_cast<uint64_t>(std::popcount(v));
      last_[i].pages_unique +=
          static_cast<uint64_t>(std::popcount(v & ~twice));
    }
  }
  return first;
}

}  // namespace converge
