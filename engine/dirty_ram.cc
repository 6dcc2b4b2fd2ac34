#include "engine/dirty_ram.h"

#include <algorithm>
#include <cassert>
#include <utility>

#include "bitmap/dirty_bitmap.h"
#include "bitmap/word_ops.h"
#include "iommu/dirty_tracker.h"

namespace converge {
namespace {

std::vector<RamRegion> TrackerRegions(const std::vector<GuestRegion>& in) {
  std::vector<RamRegion> out;
  for (const GuestRegion& g : in) out.push_back({g.gpa, g.size_bytes, g.host});
  return out;
}

// Moves the bits of pages [first, first + count) from `from` to `to`.
// REQUIRES: first % 64 == 0; same sizes.
void MoveBits(DirtyBitmap& from, DirtyBitmap& to, uint64_t first,
              uint64_t count) {
  std::span<uint64_t> src = from.words();
  std::span<uint64_t> dst = to.words();
  const uint64_t w0 = first / 64;
  const uint64_t w1 = std::min<uint64_t>((first + count + 63) / 64, src.size());
  for (uint64_t w = w0; w < w1; ++w) {
    dst[w] |= src[w];
    src[w] = 0;
  }
}

bool AnyBits(const DirtyBitmap& b, uint64_t first, uint64_t count) {
  std::span<const uint64_t> words = b.words();
  const uint64_t w0 = first / 64;
  const uint64_t w1 =
      std::min<uint64_t>((first + count + 63) / 64, words.size());
  for (uint64_t w = w0; w < w1; ++w) {
    if (words[w] != 0) return true;
  }
  return false;
}

}  // namespace

struct DirtyRam::Rep {
  Rep(const std::vector<GuestRegion>& regions, const Options& o)
      : options(o),
        tracker(TrackerRegions(regions),
                DirtyTracker::Options{o.page_bytes, o.harvest_chunk_pages}) {
    for (const GuestRegion& g : regions) {
      const uint64_t pages = g.size_bytes / o.page_bytes;
      pending.emplace_back(pages);
      staging.emplace_back(pages);
      history.emplace_back();
      for (uint32_t k = 0; k < o.wws_syncs; ++k) {
        history.back().emplace_back(pages);
      }
    }
  }

  uint64_t ChunkPages(size_t region) const {
    const uint64_t pages = pending[region].num_pages();
    return options.rearm_chunk_pages == 0 ? pages : options.rearm_chunk_pages;
  }

  Options options;
  DirtyTracker tracker;
  std::vector<DirtyBitmap> pending;  // dirty, not yet handed to the channel
  std::vector<DirtyBitmap> staging;  // re-armed, handed to the channel
  // history[r][k]: harvest of region r by sync (syncs - k) mod wws_syncs.
  std::vector<std::vector<DirtyBitmap>> history;
  uint64_t syncs = 0;
  // Where the next Send() resumes: region and first page of a chunk.
  size_t cursor_region = 0;
  uint64_t cursor_page = 0;
  uint64_t rearm_errors = 0;
  bool started = false;
};

DirtyRam::DirtyRam(const std::vector<GuestRegion>& regions,
                   const Options& options)
    : rep_(std::make_unique<Rep>(regions, options)) {
  assert(options.wws_syncs >= 1);
  assert(options.rearm_chunk_pages % 64 == 0);
}

DirtyRam::~DirtyRam() { (void)Stop(); }

void DirtyRam::AddSource(DirtySource* source) {
  assert(!rep_->started);
  rep_->tracker.AddSource(source);
}

Status DirtyRam::Start() {
  assert(!rep_->started);
  CONVERGE_RETURN_IF_ERROR(rep_->tracker.Start());
  for (DirtyBitmap& b : rep_->pending) b.SetRange(0, b.num_pages());
  rep_->started = true;
  return OkStatus();
}

DirtyRam::SyncResult DirtyRam::Sync() {
  assert(rep_->started);
  Rep& r = *rep_;
  const size_t slot = r.syncs % r.options.wws_syncs;
  // The tracker ORs into its own bitmaps: hand it a cleared history slot,
  // so that afterwards the slot holds exactly this sync's harvest.
  for (size_t i = 0; i < r.pending.size(); ++i) {
    r.history[i][slot].ClearAll();
    std::swap(r.tracker.bitmap(i), r.history[i][slot]);
  }
  SyncResult out;
  out.source_error = r.tracker.Sync();
  ++r.syncs;
  const bool full_history = r.syncs >= r.options.wws_syncs;
  for (size_t i = 0; i < r.pending.size(); ++i) {
    std::swap(r.tracker.bitmap(i), r.history[i][slot]);
    const DirtyBitmap& harvest = r.history[i][slot];
    out.dirtied_pages += harvest.Count();
    r.pending[i].MergeFrom(harvest);
    out.pending_pages += r.pending[i].Count() + r.staging[i].Count();
    if (!full_history) continue;
    std::span<const uint64_t> first = r.history[i][0].words();
    for (size_t w = 0; w < first.size(); ++w) {
      uint64_t v = first[w];
      for (uint32_t k = 1; k < r.options.wws_syncs && v != 0; ++k) {
        v &= r.history[i][k].words()[w];
      }
      out.wws_pages += static_cast<uint64_t>(__builtin_popcountll(v));
    }
  }
  for (size_t s = 0; s < r.tracker.num_sources(); ++s) {
    out.source_pages.push_back(r.tracker.last_sync(s).pages_reported);
  }
  return out;
}

Result<RamChannelStats> DirtyRam::Send(RamChannel& channel,
                                       const RamChannelBudget& budget,
                                       bool rearm) {
  assert(rep_->started);
  Rep& r = *rep_;
  RamChannelStats total;
  // Sends what is staged; false when the budget stopped it.
  auto send_staged = [&]() -> Result<bool> {
    RamChannelBudget b = budget;
    b.max_bytes = budget.max_bytes > total.wire_bytes
                      ? budget.max_bytes - total.wire_bytes
                      : 0;
    CONVERGE_ASSIGN_OR_RETURN(RamChannelStats s, channel.Send(r.staging, b));
    total.pages += s.pages;
    total.zero_pages += s.zero_pages;
    total.records += s.records;
    total.wire_bytes += s.wire_bytes;
    return s.complete;
  };
  // Pages staged by an earlier call that ran out of budget go first.
  bool staged = false;
  for (const DirtyBitmap& b : r.staging) staged |= b.Any();
  if (staged) {
    CONVERGE_ASSIGN_OR_RETURN(bool done, send_staged());
    if (!done) return total;
  }
  // One lap over every chunk, starting where the last call stopped.
  const size_t regions = r.pending.size();
  uint64_t total_chunks = 0;
  for (size_t i = 0; i < regions; ++i) {
    const uint64_t chunk = r.ChunkPages(i);
    total_chunks += (r.pending[i].num_pages() + chunk - 1) / chunk;
  }
  for (uint64_t n = 0; n < total_chunks; ++n) {
    const size_t i = r.cursor_region;
    const uint64_t first = r.cursor_page;
    const uint64_t pages = r.pending[i].num_pages();
    const uint64_t count = std::min(r.ChunkPages(i), pages - first);
    r.cursor_page += count;
    if (r.cursor_page >= pages) {
      r.cursor_page = 0;
      r.cursor_region = (r.cursor_region + 1) % regions;
    }
    if (!AnyBits(r.pending[i], first, count)) continue;
    if (rearm && !r.tracker.Rearm(i, first, count).ok()) {
      // The pages stay dirty in the source and are reported again.
      ++r.rearm_errors;
    }
    MoveBits(r.pending[i], r.staging[i], first, count);
    CONVERGE_ASSIGN_OR_RETURN(bool done, send_staged());
    if (!done) return total;
  }
  total.complete = pending_pages() == 0;
  return total;
}

Status DirtyRam::Stop() {
  if (!rep_->started) return OkStatus();
  rep_->started = false;
  return rep_->tracker.Stop();
}

bool DirtyRam::started() const { return rep_->started; }

uint64_t DirtyRam::pending_pages() const {
  uint64_t n = 0;
  for (size_t i = 0; i < rep_->pending.size(); ++i) {
    n += rep_->pending[i].Count() + rep_->staging[i].Count();
  }
  return n;
}

uint64_t DirtyRam::rearm_errors() const { return rep_->rearm_errors; }

}  // namespace converge
