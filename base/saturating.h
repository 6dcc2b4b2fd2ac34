// Saturating arithmetic for byte and page counts that come from devices and
// the kernel: a device may report any 64-bit value, and a sum that wraps
// would turn "enormous" into "almost nothing" (an early switchover).
//
// Thread-safety: pure functions.

#ifndef CONVERGE_BASE_SATURATING_H_
#define CONVERGE_BASE_SATURATING_H_

#include <cmath>
#include <cstdint>
#include <limits>

namespace converge {

inline constexpr uint64_t kU64Max = std::numeric_limits<uint64_t>::max();

// a + b, or UINT64_MAX if that overflows.
inline uint64_t SaturatingAdd(uint64_t a, uint64_t b) {
  uint64_t r;
  return __builtin_add_overflow(a, b, &r) ? kU64Max : r;
}

// a * b, or UINT64_MAX if that overflows.
inline uint64_t SaturatingMul(uint64_t a, uint64_t b) {
  uint64_t r;
  return __builtin_mul_overflow(a, b, &r) ? kU64Max : r;
}

// v rounded toward zero into [0, UINT64_MAX]; NaN and negatives are 0,
// +infinity and anything too large are UINT64_MAX. (A plain cast of an
// out-of-range double is undefined behaviour.)
inline uint64_t ClampToU64(double v) {
  if (!(v > 0)) return 0;
  // 2^64 is exactly representable; every double below it converts.
  if (v >= 18446744073709551616.0) return kU64Max;
  return static_cast<uint64_t>(v);
}

}  // namespace converge

#endif  // CONVERGE_BASE_SATURATING_H_
