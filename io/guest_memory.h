// GuestRegion: one region of guest RAM as the host sees it (GPA range and
// the host mapping), as the RAM sender reads it and the receiver writes it.

#ifndef CONVERGE_IO_GUEST_MEMORY_H_
#define CONVERGE_IO_GUEST_MEMORY_H_

#include <cstdint>

namespace converge {

struct GuestRegion {
  uint64_t gpa = 0;
  uint64_t size_bytes = 0;
  uint8_t* host = nullptr;  // size_bytes of host memory, not owned
};

}  // namespace converge

#endif  // CONVERGE_IO_GUEST_MEMORY_H_
