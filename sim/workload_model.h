// WorkloadModel: a guest's page writes as a function of time, for guests
// too large to run (the `model` command). The patterns match the micro-VM's
// mailbox workloads: a sequential sweep, uniform random, hot/cold (most
// writes to a small hot set), idle, and bursts.
//
// ModelDirtySource puts a WorkloadModel behind the DirtySource interface, so
// the real DirtyTracker and engine harvest it like any other tracker.
//
// Thread-safety: none; one thread drives a model.

#ifndef CONVERGE_SIM_WORKLOAD_MODEL_H_
#define CONVERGE_SIM_WORKLOAD_MODEL_H_

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "bitmap/dirty_bitmap.h"
#include "iommu/dirty_source.h"

namespace converge::sim {

enum class WorkloadKind { kSeq, kRandom, kHotCold, kIdle, kBurst };

// "seq", "random", "hotcold", "idle", "burst".
std::string_view WorkloadName(WorkloadKind kind);
Result<WorkloadKind> ParseWorkload(std::string_view name);

struct WorkloadOptions {
  WorkloadKind kind = WorkloadKind::kHotCold;
  // Page writes per second while the guest runs (not all distinct pages).
  double writes_per_second = 50000;
  // Hot/cold: this share of the writes goes to this fraction of the pages.
  double hot_fraction = 0.10;
  double hot_write_share = 0.90;
  // Bursts: writes at the full rate for burst_on_ms, then none for
  // burst_off_ms.
  double burst_on_ms = 200;
  double burst_off_ms = 800;
  uint64_t seed = 1;
};

class WorkloadModel {
 public:
  // REQUIRES: num_pages > 0.
  WorkloadModel(uint64_t num_pages, WorkloadOptions options);

  // Sets in `out` every page the guest writes in (last call, now_ns]. The
  // first call only sets the origin. REQUIRES: out.num_pages() ==
  // num_pages(); now_ns never goes backwards.
  void RunUntil(uint64_t now_ns, DirtyBitmap& out);

  // A vCPU throttle: the guest runs (1 - fraction) of the time.
  // REQUIRES: 0 <= fraction < 1.
  void set_throttle(double fraction) { throttle_ = fraction; }
  // Paused guests write nothing (the switchover stop).
  void set_paused(bool paused) { paused_ = paused; }

  uint64_t num_pages() const { return num_pages_; }
  uint64_t writes() const { return writes_; }

 private:
  uint64_t NextPage();
  // Writes the guest issues in [from_ns, to_ns) at the current throttle.
  uint64_t WritesBetween(uint64_t from_ns, uint64_t to_ns);

  uint64_t num_pages_;
  WorkloadOptions options_;
  std::mt19937_64 rng_;
  uint64_t hot_pages_;
  uint64_t cursor_ = 0;  // sequential sweep position
  double carry_ = 0;     // fractional writes left over between calls
  double throttle_ = 0;
  bool paused_ = false;
  bool started_ = false;
  uint64_t last_ns_ = 0;
  uint64_t writes_ = 0;
};

// A DirtySource over a WorkloadModel on a (usually virtual) clock: each
// harvest first runs the guest up to now, then moves the window's bits out.
// Tracks one range starting at GPA 0.
class ModelDirtySource final : public DirtySource {
 public:
  ModelDirtySource(Clock& clock, WorkloadModel& model);

  std::string_view name() const override { return "model"; }
  Status Start(std::span<const GpaRange> ranges,
               uint64_t ram_page_size) override;
  Status Harvest(uint64_t gpa, uint64_t num_pages, DirtyBitmap& out,
                 uint64_t out_first_page) override;
  Status Stop() override;
  DirtySourceLimits limits() const override { return {}; }

 private:
  Clock& clock_;
  WorkloadModel& model_;
  DirtyBitmap pending_;  // written since the last harvest of each page
  uint64_t page_size_ = 4096;
  bool started_ = false;
};

}  // namespace converge::sim

#endif  // CONVERGE_SIM_WORKLOAD_MODEL_H_
