// ByteBuffer: a byte vector whose resize() leaves new bytes uninitialized,
// for buffers that are overwritten at once (read() targets, codec output):
// zero-filling a MiB per chunk costs as much as a memcpy of it.
//
// Thread-safety: that of std::vector.

#ifndef CONVERGE_BASE_BYTE_BUFFER_H_
#define CONVERGE_BASE_BYTE_BUFFER_H_

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace converge {

// Default-initializes (for bytes: leaves alone) instead of value-initializing.
template <typename T>
struct DefaultInitAllocator : std::allocator<T> {
  template <typename U>
  struct rebind {
    using other = DefaultInitAllocator<U>;
  };
  DefaultInitAllocator() = default;
  template <typename U>
  DefaultInitAllocator(const DefaultInitAllocator<U>&) noexcept {}
  template <typename U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};

using ByteBuffer = std::vector<uint8_t, DefaultInitAllocator<uint8_t>>;

}  // namespace converge

#endif  // CONVERGE_BASE_BYTE_BUFFER_H_
