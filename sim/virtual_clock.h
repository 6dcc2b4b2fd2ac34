// VirtualClock: simulated time for `converge-bench model`. Time moves only
// when someone sleeps on it or advances it, so a migration of a 1 TiB guest
// over a modelled link runs in seconds of real time.
//
// Thread-safety: all methods may be called concurrently.

#ifndef CONVERGE_SIM_VIRTUAL_CLOCK_H_
#define CONVERGE_SIM_VIRTUAL_CLOCK_H_

#include <atomic>
#include <cstdint>

#include "base/clock.h"

namespace converge::sim {

class VirtualClock final : public Clock {
 public:
  explicit VirtualClock(uint64_t start_ns = 0) : now_ns_(start_ns) {}

  uint64_t NowNs() const override {
    return now_ns_.load(std::memory_order_acquire);
  }
  // Sleeping is advancing: the caller's wait is what moves time.
  void SleepNs(uint64_t ns) override { AdvanceNs(ns); }
  void AdvanceNs(uint64_t ns) {
    now_ns_.fetch_add(ns, std::memory_order_acq_rel);
  }

 private:
  std::atomic<uint64_t> now_ns_;
};

}  // namespace converge::sim

#endif  // CONVERGE_SIM_VIRTUAL_CLOCK_H_
