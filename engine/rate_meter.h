// Smoothed rates for the estimator: an exponentially weighted moving
// average, and a byte rate measured over windows of a minimum length.
//
// Thread-safety: values; not thread-safe.

#ifndef CONVERGE_ENGINE_RATE_METER_H_
#define CONVERGE_ENGINE_RATE_METER_H_

#include <cassert>
#include <cstdint>

namespace converge {

// value = weight * sample + (1 - weight) * value; the first sample is taken
// as is.
class Ewma {
 public:
  // REQUIRES: 0 < weight <= 1.
  explicit Ewma(double weight) : weight_(weight) {
    assert(weight > 0 && weight <= 1);
  }

  void Add(double sample) {
    value_ = has_value_ ? weight_ * sample + (1 - weight_) * value_ : sample;
    has_value_ = true;
  }
  bool has_value() const { return has_value_; }
  // 0 before the first sample.
  double value() const { return value_; }

 private:
  double weight_;
  double value_ = 0;
  bool has_value_ = false;
};

// Bytes per second over windows of at least min_window_ns of elapsed time:
// samples accumulate until their elapsed time reaches the window, then the
// window's bytes / elapsed becomes one sample of the Ewma. Shorter bursts
// never move the rate on their own (a 1 ms send of a cached buffer says
// nothing about the link).
class WindowedRate {
 public:
  // REQUIRES: min_window_ns > 0; 0 < weight <= 1.
  WindowedRate(uint64_t min_window_ns, double weight)
      : min_window_ns_(min_window_ns), ewma_(weight) {
    assert(min_window_ns > 0);
  }

  void Add(uint64_t bytes, uint64_t elapsed_ns) {
    window_bytes_ += bytes;
    window_ns_ += elapsed_ns;
    if (window_ns_ < min_window_ns_) return;
    ewma_.Add(static_cast<double>(window_bytes_) * 1e9 /
              static_cast<double>(window_ns_));
    ++windows_;
    window_bytes_ = 0;
    window_ns_ = 0;
  }

  // True once one full window closed.
  bool measured() const { return ewma_.has_value(); }
  // Smoothed bytes per second; 0 before the first window closed.
  double bytes_per_second() const { return ewma_.value(); }
  uint64_t windows() const { return windows_; }

 private:
  uint64_t min_window_ns_;
  Ewma ewma_;
  uint64_t window_bytes_ = 0;
  uint64_t window_ns_ = 0;
  uint64_t windows_ = 0;
};

}  // namespace converge

#endif  // CONVERGE_ENGINE_RATE_METER_H_
