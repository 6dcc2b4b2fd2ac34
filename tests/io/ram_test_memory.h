// Guest memory for io tests: page-aligned regions with chosen content.

#ifndef CONVERGE_TESTS_IO_RAM_TEST_MEMORY_H_
#define CONVERGE_TESTS_IO_RAM_TEST_MEMORY_H_

#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "io/guest_memory.h"
#include "io/wire_format.h"
#include "io_test_util.h"

namespace converge::testing {

struct FreeDeleter {
  void operator()(uint8_t* p) const { std::free(p); }
};

// Regions of guest memory; region i starts at GPA i * 1 GiB.
class TestMemory {
 public:
  TestMemory(std::vector<uint64_t> sizes_bytes, uint8_t fill) {
    for (size_t i = 0; i < sizes_bytes.size(); ++i) {
      uint8_t* p =
          static_cast<uint8_t*>(std::aligned_alloc(4096, sizes_bytes[i]));
      std::memset(p, fill, sizes_bytes[i]);
      blocks_.emplace_back(p);
      regions_.push_back({uint64_t(i) << 30, sizes_bytes[i], p});
    }
  }
  void Fill(uint64_t seed) {
    for (size_t i = 0; i < regions_.size(); ++i) {
      FillContent(Content::kMixed, seed + i,
                  {regions_[i].host, regions_[i].size_bytes});
    }
  }
  const std::vector<GuestRegion>& regions() const { return regions_; }
  std::vector<StreamRegion> layout() const {
    std::vector<StreamRegion> out;
    for (const GuestRegion& r : regions_) out.push_back({r.gpa, r.size_bytes});
    return out;
  }
  uint8_t* page(size_t region, uint64_t page) {
    return regions_[region].host + page * 4096;
  }

 private:
  std::vector<std::unique_ptr<uint8_t, FreeDeleter>> blocks_;
  std::vector<GuestRegion> regions_;
};

}  // namespace converge::testing

#endif  // CONVERGE_TESTS_IO_RAM_TEST_MEMORY_H_
