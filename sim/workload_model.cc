#include "sim/workload_model.h"

#include <algorithm>
#include <cassert>
#include <cmath>

namespace converge::sim {
namespace {

// Bits [first, first + count) of b as kernel-layout words, bit 0 = first.
std::vector<uint64_t> ExtractWords(const DirtyBitmap& b, uint64_t first,
                                   uint64_t count) {
  std::vector<uint64_t> out((count + 63) / 64, 0);
  std::span<const uint64_t> w = b.words();
  const uint64_t shift = first % 64;
  const uint64_t base = first / 64;
  for (uint64_t i = 0; i < out.size(); ++i) {
    uint64_t lo = w[base + i] >> shift;
    uint64_t hi = 0;
    if (shift != 0 && base + i + 1 < w.size()) hi = w[base + i + 1] << (64 - shift);
    out[i] = lo | hi;
  }
  if (count % 64 != 0) out.back() &= (uint64_t{1} << (count % 64)) - 1;
  return out;
}

}  // namespace

std::string_view WorkloadName(WorkloadKind kind) {
  switch (kind) {
    case WorkloadKind::kSeq: return "seq";
    case WorkloadKind::kRandom: return "random";
    case WorkloadKind::kHotCold: return "hotcold";
    case WorkloadKind::kIdle: return "idle";
    case WorkloadKind::kBurst: return "burst";
  }
  return "unknown";
}

Result<WorkloadKind> ParseWorkload(std::string_view name) {
  for (WorkloadKind k : {WorkloadKind::kSeq, WorkloadKind::kRandom,
                         WorkloadKind::kHotCold, WorkloadKind::kIdle,
                         WorkloadKind::kBurst}) {
    if (WorkloadName(k) == name) return k;
  }
  return InvalidArgumentError("unknown workload '" + std::string(name) +
                              "' (seq, random, hotcold, idle, burst)");
}

WorkloadModel::WorkloadModel(uint64_t num_pages, WorkloadOptions options)
    : num_pages_(num_pages),
      options_(options),
      rng_(options.seed),
      hot_pages_(std::max<uint64_t>(
          1, static_cast<uint64_t>(static_cast<double>(num_pages) *
                                   options.hot_fraction))) {
  assert(num_pages > 0);
}

uint64_t WorkloadModel::WritesBetween(uint64_t from_ns, uint64_t to_ns) {
  if (paused_ || options_.kind == WorkloadKind::kIdle) return 0;
  double active_ns = static_cast<double>(to_ns - from_ns);
  if (options_.kind == WorkloadKind::kBurst) {
    // Time inside "on" phases of the periodic burst pattern.
    const double on = options_.burst_on_ms * 1e6;
    const double period = on + options_.burst_off_ms * 1e6;
    auto on_before = [&](double t) {
      double cycles = std::floor(t / period);
      return cycles * on + std::min(on, t - cycles * period);
    };
    active_ns = on_before(static_cast<double>(to_ns)) -
                on_before(static_cast<double>(from_ns));
  }
  double w = active_ns * 1e-9 * options_.writes_per_second * (1 - throttle_) +
             carry_;
  double whole = std::floor(w);
  carry_ = w - whole;
  return static_cast<uint64_t>(whole);
}

uint64_t WorkloadModel::NextPage() {
  switch (options_.kind) {
    case WorkloadKind::kSeq: {
      uint64_t p = cursor_;
      cursor_ = cursor_ + 1 == num_pages_ ? 0 : cursor_ + 1;
      return p;
    }
    case WorkloadKind::kHotCold: {
      std::uniform_real_distribution<double> share(0, 1);
      if (share(rng_) < options_.hot_write_share) {
        return std::uniform_int_distribution<uint64_t>(0, hot_pages_ - 1)(rng_);
      }
      return std::uniform_int_distribution<uint64_t>(0, num_pages_ - 1)(rng_);
    }
    case WorkloadKind::kRandom:
    case WorkloadKind::kBurst:
    case WorkloadKind::kIdle:
      break;
  }
  return std::uniform_int_distribution<uint64_t>(0, num_pages_ - 1)(rng_);
}

void WorkloadModel::RunUntil(uint64_t now_ns, DirtyBitmap& out) {
  assert(out.num_pages() == num_pages_);
  if (!started_) {
    started_ = true;
    last_ns_ = now_ns;
    return;
  }
  assert(now_ns >= last_ns_);
  uint64_t n = WritesBetween(last_ns_, now_ns);
  last_ns_ = now_ns;
  writes_ += n;
  if (options_.kind == WorkloadKind::kSeq) {
    // A sweep dirties a contiguous, wrapping range: set it in bulk.
    uint64_t left = std::min(n, num_pages_);
    while (left > 0) {
      uint64_t step = std::min(left, num_pages_ - cursor_);
      out.SetRange(cursor_, step);
      cursor_ = (cursor_ + step) % num_pages_;
      left -= step;
    }
    return;
  }
  for (uint64_t i = 0; i < n; ++i) out.Set(NextPage());
}

ModelDirtySource::ModelDirtySource(Clock& clock, WorkloadModel& model)
    : clock_(clock), model_(model) {}

Status ModelDirtySource::Start(std::span<const GpaRange> ranges,
                               uint64_t ram_page_size) {
  if (started_) return FailedPreconditionError("model source already started");
  if (ranges.size() != 1 || ranges[0].gpa != 0 ||
      ranges[0].bytes != model_.num_pages() * ram_page_size) {
    return InvalidArgumentError(
        "model source tracks exactly one range at GPA 0 covering the model's "
        "pages");
  }
  page_size_ = ram_page_size;
  pending_ = DirtyBitmap(model_.num_pages());
  // Like KVM's INITIALLY_SET: the first pass sends everything.
  pending_.SetRange(0, model_.num_pages());
  model_.RunUntil(clock_.NowNs(), pending_);
  started_ = true;
  return OkStatus();
}

Status ModelDirtySource::Harvest(uint64_t gpa, uint64_t num_pages,
                                 DirtyBitmap& out, uint64_t out_first_page) {
  if (!started_) return FailedPreconditionError("model source not started");
  const uint64_t first = gpa / page_size_;
  if (gpa % page_size_ != 0 || first > model_.num_pages() ||
      num_pages > model_.num_pages() - first ||
      out_first_page > out.num_pages() ||
      num_pages > out.num_pages() - out_first_page) {
    return OutOfRangeError("model source: harvest window out of range");
  }
  ++stats_.harvests;
  model_.RunUntil(clock_.NowNs(), pending_);
  std::vector<uint64_t> words = ExtractWords(pending_, first, num_pages);
  CONVERGE_RETURN_IF_ERROR(out.MergeWords(words, out_first_page));
  stats_.pages_reported += pending_.CountRange(first, num_pages);
  pending_.ClearRange(first, num_pages);
  return OkStatus();
}

Status ModelDirtySource::Stop() {
  started_ = false;
  return OkStatus();
}

}  // namespace converge::sim
