#include "base/clock.h"

#include <time.h>

#include "base/status.h"

namespace converge {
namespace {

class MonotonicClock final : public Clock {
 public:
  uint64_t NowNs() const override {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull +
           static_cast<uint64_t>(ts.tv_nsec);
  }
  void SleepNs(uint64_t ns) override {
    timespec ts{static_cast<time_t>(ns / 1000000000ull),
                static_cast<long>(ns % 1000000000ull)};
    // clock_nanosleep returns an errno value and leaves the remaining time
    // in ts on EINTR: sleep it out.
    (void)RetryOnEintr([&]() -> Status {
      int r = clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts);
      return r == 0 ? OkStatus() : ErrnoStatus(r, "clock_nanosleep");
    });
  }
};

}  // namespace

Clock& Clock::Monotonic() {
  static MonotonicClock* clock = new MonotonicClock;
  return *clock;
}

}  // namespace converge
