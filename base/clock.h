// Clock: the time source of the engine. Clock::Monotonic() is the real
// CLOCK_MONOTONIC; sim::VirtualClock lets `converge-bench model` run a
// migration of any size on simulated time.
//
// Thread-safety: NowNs() may be called from any thread.

#ifndef CONVERGE_BASE_CLOCK_H_
#define CONVERGE_BASE_CLOCK_H_

#include <cstdint>

namespace converge {

class Clock {
 public:
  virtual ~Clock() = default;
  // Nanoseconds since an arbitrary fixed origin; never goes backwards.
  virtual uint64_t NowNs() const = 0;
  // Waits until `ns` have passed on this clock (a virtual clock advances).
  virtual void SleepNs(uint64_t ns) = 0;

  // CLOCK_MONOTONIC. Never destroyed.
  static Clock& Monotonic();
};

inline double NsToMs(uint64_t ns) { return static_cast<double>(ns) / 1e6; }

}  // namespace converge

#endif  // CONVERGE_BASE_CLOCK_H_
