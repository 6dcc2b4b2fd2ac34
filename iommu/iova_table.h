// IovaTable: how an IOVA-indexed dirty source (an IOMMU, a device's DMA
// log) maps guest-physical addresses to the IOVAs its kernel object speaks.
// Empty means identity (IOVA == GPA), the usual VFIO setup; otherwise every
// GPA a source tracks must lie in one added mapping.
//
// Thread-safety: none; built once before the source starts, then read-only.

#ifndef CONVERGE_IOMMU_IOVA_TABLE_H_
#define CONVERGE_IOMMU_IOVA_TABLE_H_

#include <cstdint>
#include <vector>

#include "base/status.h"

namespace converge {

// IOVA [iova, iova + bytes).
struct IovaSpan {
  uint64_t iova = 0;
  uint64_t bytes = 0;
  uint64_t end() const { return iova + bytes; }
  friend bool operator==(const IovaSpan&, const IovaSpan&) = default;
};

// GPA [gpa, gpa + bytes) is IOVA [iova, iova + bytes).
struct IovaMapping {
  uint64_t gpa = 0;
  uint64_t iova = 0;
  uint64_t bytes = 0;
};

class IovaTable {
 public:
  IovaTable() = default;  // identity

  // Adds a translation. Errors: zero bytes, a range that wraps, or GPAs
  // that overlap an earlier mapping.
  Status Add(const IovaMapping& mapping);

  // The IOVA of gpa. Errors (InvalidArgument) if [gpa, gpa + bytes) is not
  // inside one mapping of a non-identity table.
  Result<uint64_t> ToIova(uint64_t gpa, uint64_t bytes) const;

  bool identity() const { return mappings_.empty(); }

 private:
  std::vector<IovaMapping> mappings_;  // sorted by gpa, disjoint
};

}  // namespace converge

#endif  // CONVERGE_IOMMU_IOVA_TABLE_H_
