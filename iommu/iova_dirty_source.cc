#include "iommu/iova_dirty_source.h"

#include <algorithm>
#include <bit>
#include <cassert>
#include <chrono>
#include <cstdio>

#include "bitmap/rescale.h"
#include "iommu/bit_range.h"

namespace converge {
namespace {

uint64_t AlignDown(uint64_t v, uint64_t a) { return v & ~(a - 1); }
uint64_t AlignUp(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

std::string Hex(uint64_t v) {
  char buf[24];
  snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

void IovaDirtySource::SetGeometry(uint64_t page_bytes, uint64_t align_bytes,
                                  uint64_t max_call_bytes) {
  assert(std::has_single_bit(page_bytes));
  assert(std::has_single_bit(align_bytes) && align_bytes >= page_bytes);
  assert(max_call_bytes >= align_bytes);
  page_bytes_ = page_bytes;
  align_bytes_ = align_bytes;
  max_call_bytes_ = AlignDown(max_call_bytes, align_bytes);
}

Status IovaDirtySource::Start(std::span<const GpaRange> ranges,
                              uint64_t ram_page_size) {
  const std::string who(name());
  if (started_) return FailedPreconditionError(who + ": already started");
  if (!std::has_single_bit(ram_page_size) || ram_page_size < 4096) {
    return InvalidArgumentError(who + ": RAM page size " +
                                std::to_string(ram_page_size) +
                                " is not a power of two >= 4096");
  }
  if (ranges.empty()) return InvalidArgumentError(who + ": no ranges");
  std::vector<GpaRange> sorted(ranges.begin(), ranges.end());
  std::sort(sorted.begin(), sorted.end(),
            [](const GpaRange& a, const GpaRange& b) { return a.gpa < b.gpa; });
  std::vector<Tracked> tracked;
  std::vector<IovaSpan> spans;
  for (size_t i = 0; i < sorted.size(); ++i) {
    const GpaRange& r = sorted[i];
    if (r.bytes == 0 || r.gpa % ram_page_size != 0 ||
        r.bytes % ram_page_size != 0 || r.gpa + r.bytes < r.gpa) {
      return InvalidArgumentError(who + ": range at gpa " + Hex(r.gpa) +
                                  " is empty, unaligned or wraps");
    }
    if (i > 0 && sorted[i - 1].gpa + sorted[i - 1].bytes > r.gpa) {
      return InvalidArgumentError(who + ": ranges at gpa " +
                                  Hex(sorted[i - 1].gpa) + " and " +
                                  Hex(r.gpa) + " overlap");
    }
    CONVERGE_ASSIGN_OR_RETURN(uint64_t iova, table_.ToIova(r.gpa, r.bytes));
    Tracked t;
    t.gpa = r.gpa;
    t.iova = iova;
    t.pages = r.bytes / ram_page_size;
    tracked.push_back(std::move(t));
    spans.push_back(IovaSpan{iova, r.bytes});
  }
  ram_page_bytes_ = ram_page_size;
  tracked_ = std::move(tracked);
  Status s = StartTracking(spans);
  if (!s.ok()) {
    tracked_.clear();
    return s.WithContext(who + ": start");
  }
  started_ = true;
  return OkStatus();
}

Status IovaDirtySource::Stop() {
  if (!started_) return OkStatus();
  Status s = StopTracking();
  tracked_.clear();
  started_ = false;
  if (!s.ok()) return s.WithContext(std::string(name()) + ": stop");
  return OkStatus();
}

DirtySourceLimits IovaDirtySource::limits() const {
  DirtySourceLimits l;
  l.page_size_bytes = page_bytes_;
  l.align_pages = std::max<uint64_t>(1, align_bytes_ / ram_page_bytes_);
  l.max_pages_per_call = max_call_bytes_ == UINT64_MAX
                             ? UINT64_MAX
                             : std::max<uint64_t>(1, max_call_bytes_ /
                                                         ram_page_bytes_);
  return l;
}

uint64_t IovaDirtySource::pending_pages() const {
  uint64_t total = 0;
  for (const Tracked& t : tracked_) total += t.pending_count;
  return total;
}

Status IovaDirtySource::PlanCalls(uint64_t lo, uint64_t hi,
                                  std::vector<IovaSpan>& calls) const {
  for (uint64_t cur = lo; cur < hi;) {
    const uint64_t bytes = std::min(max_call_bytes_, hi - cur);
    calls.push_back(IovaSpan{cur, bytes});
    cur += bytes;
  }
  return OkStatus();
}

Status IovaDirtySource::Harvest(uint64_t gpa, uint64_t num_pages,
                                DirtyBitmap& out, uint64_t out_first_page) {
  return HarvestWithFlags(gpa, num_pages, out, out_first_page, 0);
}

Status IovaDirtySource::HarvestIntoZeroed(uint64_t gpa, uint64_t num_pages,
                                          DirtyBitmap& out,
                                          std::vector<uint64_t>& set_words) {
  return HarvestTimed(gpa, num_pages, out, 0, 0, &set_words);
}

Status IovaDirtySource::HarvestWithFlags(uint64_t gpa, uint64_t num_pages,
                                         DirtyBitmap& out,
                                         uint64_t out_first_page,
                                         uint32_t read_flags) {
  return HarvestTimed(gpa, num_pages, out, out_first_page, read_flags,
                      nullptr);
}

Status IovaDirtySource::HarvestTimed(uint64_t gpa, uint64_t num_pages,
                                     DirtyBitmap& out, uint64_t out_first_page,
                                     uint32_t read_flags,
                                     std::vector<uint64_t>* set_words) {
  const auto t0 = std::chrono::steady_clock::now();
  ++stats_.harvests;
  uint64_t reported = 0, marked = 0;
  Status s = HarvestLocked(gpa, num_pages, out, out_first_page, read_flags,
                           set_words != nullptr, reported, marked);
  if (set_words != nullptr && num_pages <= out.num_pages()) {
    // The window was clean: its set words are exactly what the harvest
    // delivered, and listing them counts it in the same pass.
    const uint64_t listed =
        ListSetWords(out.words().data(), (num_pages + 63) / 64, *set_words);
    if (s.ok()) reported = listed;
  }
  stats_.pages_reported += reported;
  stats_.harvest_ns += static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::chrono::steady_clock::now() - t0)
          .count());
  if (!s.ok()) {
    ++stats_.errors;
    stats_.pages_marked_on_error += marked;
    s = s.WithContext(Describe(gpa, num_pages));
    stats_.last_error = s;
  }
  return s;
}

std::string IovaDirtySource::Describe(uint64_t gpa, uint64_t num_pages) const {
  return std::string(name()) + ": harvest of gpa " + Hex(gpa) + " + " +
         std::to_string(num_pages) + " pages";
}

Status IovaDirtySource::HarvestLocked(uint64_t gpa, uint64_t num_pages,
                                      DirtyBitmap& out,
                                      uint64_t out_first_page,
                                      uint32_t read_flags, bool out_zeroed,
                                      uint64_t& reported, uint64_t& marked) {
  const bool fits = out_first_page <= out.num_pages() &&
                    num_pages <= out.num_pages() - out_first_page;
  if (!fits) {
    return InvalidArgumentError("window of " + std::to_string(num_pages) +
                                " pages at " + std::to_string(out_first_page) +
                                " does not fit the output bitmap of " +
                                std::to_string(out.num_pages()) + " pages");
  }
  auto mark_window = [&] {
    out.SetRange(out_first_page, num_pages);
    marked = num_pages;
  };
  if (!started_) {
    mark_window();
    return FailedPreconditionError("not started");
  }
  if (num_pages == 0) return OkStatus();
  const uint64_t r_bytes = ram_page_bytes_;
  auto it = std::upper_bound(
      tracked_.begin(), tracked_.end(), gpa,
      [](uint64_t g, const Tracked& t) { return g < t.gpa; });
  if (gpa % r_bytes != 0 || it == tracked_.begin() ||
      (gpa - std::prev(it)->gpa) / r_bytes + num_pages >
          std::prev(it)->pages) {
    mark_window();
    return InvalidArgumentError("window is not page aligned inside one "
                                "tracked range");
  }
  Tracked& t = *std::prev(it);
  Window w;
  w.range = static_cast<size_t>(std::prev(it) - tracked_.begin());
  w.first = (gpa - t.gpa) / r_bytes;
  w.pages = num_pages;
  w.iova_lo = t.iova + w.first * r_bytes;
  w.iova_hi = w.iova_lo + num_pages * r_bytes;

  // A kernel call may write the output's words directly only while they
  // are still clean: then pending bits are ORed in after the calls.
  assert(!out_zeroed || out_first_page == 0);
  const bool direct = out_zeroed && page_bytes_ == r_bytes;
  if (!direct) reported += DeliverPending(t, w, out, out_first_page);

  calls_.clear();
  Status plan = PlanCalls(AlignDown(w.iova_lo, align_bytes_),
                          AlignUp(w.iova_hi, align_bytes_), calls_);
  if (!plan.ok()) {
    mark_window();
    return plan;
  }
  for (const IovaSpan& call : calls_) {
    const uint64_t bits = call.bytes / page_bytes_;
    const bool inside = call.iova >= w.iova_lo && call.end() <= w.iova_hi;
    const uint64_t offset_pages = inside ? (call.iova - w.iova_lo) / r_bytes : 0;
    const bool into_out = direct && inside && offset_pages % 64 == 0;
    std::span<uint64_t> words;
    if (into_out) {
      words = out.words().subspan(offset_pages / 64, (bits + 63) / 64);
    } else {
      buffer_.assign((bits + 63) / 64, 0);
      words = buffer_;
    }
    ++stats_.kernel_calls;
    Status rs = ReadLog(call, read_flags, words);
    Result<uint64_t> delivered = uint64_t{0};
    if (rs.ok()) {
      if (bits % 64 != 0) words.back() &= (uint64_t{1} << (bits % 64)) - 1;
      // Bits written straight into out are counted when HarvestTimed lists
      // the window's set words.
      if (!into_out) delivered = Deliver(call, words, w, out, out_first_page);
    }
    if (!rs.ok() || !delivered.ok()) {
      // What the call read (and cleared) is lost: the window is dirty, and
      // so is the part of the call outside it.
      mark_window();
      AddPending(call.iova, call.end(), &w);
      if (!rs.ok()) {
        Status restart = AfterReadError();
        if (!restart.ok()) {
          return Status(rs.code(),
                        rs.message() + "; restarting tracking failed: " +
                            restart.ToString(),
                        rs.sys_errno());
        }
        return rs;
      }
      return delivered.status();
    }
    reported += *delivered;
  }
  if (direct) reported += DeliverPending(t, w, out, out_first_page);
  return OkStatus();
}

uint64_t IovaDirtySource::DeliverPending(Tracked& t, const Window& w,
                                         DirtyBitmap& out,
                                         uint64_t out_first_page) {
  if (t.pending_count == 0) return 0;
  const uint64_t n = OrBitRange(t.pending.words().data(), w.first,
                                out.words().data(), out_first_page, w.pages);
  t.pending.ClearRange(w.first, w.pages);
  t.pending_count -= n;
  return n;
}

Result<uint64_t> IovaDirtySource::Deliver(const IovaSpan& call,
                                          std::span<const uint64_t> words,
                                          const Window& w, DirtyBitmap& out,
                                          uint64_t out_first_page) {
  const uint64_t s_bytes = page_bytes_, r_bytes = ram_page_bytes_;
  const uint64_t bits = call.bytes / s_bytes;
  if (call.iova >= w.iova_lo && call.end() <= w.iova_hi) {
    const uint64_t offset_bytes = call.iova - w.iova_lo;
    if (s_bytes == r_bytes) {
      return OrBitRange(words.data(), 0, out.words().data(),
                        out_first_page + offset_bytes / r_bytes, bits);
    }
    if (s_bytes > r_bytes) {
      uint64_t set = 0;
      for (uint64_t v : words) set += static_cast<uint64_t>(std::popcount(v));
      CONVERGE_RETURN_IF_ERROR(RescaleWordsInto(
          words, s_bytes, out_first_page * r_bytes + offset_bytes, out,
          r_bytes));
      return set * (s_bytes / r_bytes);
    }
  }
  // The call reaches outside the window (or reports below the RAM page
  // size): bit by bit, the window's part into out, the rest pending.
  uint64_t set = 0;
  for (uint64_t wi = 0; wi < words.size(); ++wi) {
    for (uint64_t v = words[wi]; v != 0; v &= v - 1) {
      const uint64_t i = wi * 64 + static_cast<uint64_t>(std::countr_zero(v));
      if (i >= bits) break;
      const uint64_t a = call.iova + i * s_bytes, b = a + s_bytes;
      const uint64_t x = std::max(a, w.iova_lo), y = std::min(b, w.iova_hi);
      if (x < y) {
        const uint64_t p0 = (x - w.iova_lo) / r_bytes;
        const uint64_t p1 = (y - w.iova_lo + r_bytes - 1) / r_bytes;
        out.SetRange(out_first_page + p0, p1 - p0);
        set += p1 - p0;
      }
      if (a < w.iova_lo) AddPending(a, std::min(b, w.iova_lo), &w);
      if (b > w.iova_hi) AddPending(std::max(a, w.iova_hi), b, &w);
    }
  }
  return set;
}

void IovaDirtySource::AddPending(uint64_t lo, uint64_t hi,
                                 const Window* except) {
  const uint64_t r_bytes = ram_page_bytes_;
  for (size_t i = 0; i < tracked_.size(); ++i) {
    Tracked& t = tracked_[i];
    const uint64_t t_end = t.iova + t.pages * r_bytes;
    const uint64_t x = std::max(lo, t.iova), y = std::min(hi, t_end);
    if (x >= y) continue;
    uint64_t p0 = (x - t.iova) / r_bytes;
    uint64_t p1 = (y - t.iova + r_bytes - 1) / r_bytes;
    auto add = [&](uint64_t first, uint64_t last) {
      if (first >= last) return;
      if (t.pending.num_pages() == 0) t.pending = DirtyBitmap(t.pages);
      const uint64_t before = t.pending.CountRange(first, last - first);
      t.pending.SetRange(first, last - first);
      t.pending_count += (last - first) - before;
    };
    if (except != nullptr && except->range == i) {
      const uint64_t w0 = except->first, w1 = except->first + except->pages;
      add(p0, std::min(p1, w0));
      add(std::max(p0, w1), p1);
    } else {
      add(p0, p1);
    }
  }
}

void IovaDirtySource::MarkAllPending() {
  for (Tracked& t : tracked_) {
    if (t.pending.num_pages() == 0) t.pending = DirtyBitmap(t.pages);
    t.pending.SetRange(0, t.pages);
    t.pending_count = t.pages;
  }
}

}  // namespace converge
