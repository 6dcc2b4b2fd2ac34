#include "iommu/iova_table.h"

#include <algorithm>
#include <cstdio>
#include <iterator>
#include <string>

namespace converge {
namespace {

std::string Hex(uint64_t v) {
  char buf[24];
  snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

Status IovaTable::Add(const IovaMapping& m) {
  if (m.bytes == 0 || m.gpa + m.bytes < m.gpa || m.iova + m.bytes < m.iova) {
    return InvalidArgumentError("IovaTable: mapping of gpa " + Hex(m.gpa) +
                                " is empty or wraps");
  }
  auto it = std::lower_bound(
      mappings_.begin(), mappings_.end(), m.gpa,
      [](const IovaMapping& a, uint64_t gpa) { return a.gpa < gpa; });
  const bool overlaps_next = it != mappings_.end() && it->gpa < m.gpa + m.bytes;
  const bool overlaps_prev =
      it != mappings_.begin() && std::prev(it)->gpa + std::prev(it)->bytes > m.gpa;
  if (overlaps_next || overlaps_prev) {
    return InvalidArgumentError("IovaTable: mapping of gpa " + Hex(m.gpa) +
                                " overlaps another");
  }
  mappings_.insert(it, m);
  return OkStatus();
}

Result<uint64_t> IovaTable::ToIova(uint64_t gpa, uint64_t bytes) const {
  if (mappings_.empty()) return gpa;
  auto it = std::upper_bound(
      mappings_.begin(), mappings_.end(), gpa,
      [](uint64_t g, const IovaMapping& a) { return g < a.gpa; });
  if (it != mappings_.begin()) {
    const IovaMapping& m = *std::prev(it);
    if (gpa >= m.gpa && bytes <= m.bytes && gpa - m.gpa <= m.bytes - bytes) {
      return m.iova + (gpa - m.gpa);
    }
  }
  return InvalidArgumentError("IovaTable: gpa " + Hex(gpa) + " + " +
                              std::to_string(bytes) +
                              " bytes is not inside one mapping");
}

}  // namespace converge
