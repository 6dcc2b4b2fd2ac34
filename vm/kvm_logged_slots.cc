#include "vm/kvm_logged_slots.h"

#include <algorithm>
#include <cassert>
#include <string>

namespace converge {
namespace {

std::string Describe(uint64_t gpa, uint64_t bytes) {
  char buf[64];
  snprintf(buf, sizeof buf, "[0x%llx, +0x%llx)",
           static_cast<unsigned long long>(gpa),
           static_cast<unsigned long long>(bytes));
  return buf;
}

// Bytes of [a, a + a_len) that overlap [b, b + b_len).
uint64_t Overlap(uint64_t a, uint64_t a_len, uint64_t b, uint64_t b_len) {
  const uint64_t lo = std::max(a, b);
  const uint64_t hi = std::min(a + a_len, b + b_len);
  return hi > lo ? hi - lo : 0;
}

}  // namespace

KvmLoggedSlots::KvmLoggedSlots(Kernel& kernel, int vm_fd,
                               std::vector<KvmMemslot> slots)
    : kernel_(kernel),
      vm_fd_(vm_fd),
      slots_(std::move(slots)),
      logging_(slots_.size(), false) {
  std::sort(slots_.begin(), slots_.end(),
            [](const KvmMemslot& a, const KvmMemslot& b) {
              return a.gpa < b.gpa;
            });
}

Status KvmLoggedSlots::Enable(std::span<const GpaRange> ranges,
                              std::string_view source) {
  assert(!enabled_);
  if (ranges.empty()) {
    return InvalidArgumentError(std::string(source) + ": no ranges to track");
  }
  for (const GpaRange& r : ranges) {
    uint64_t backed = 0;
    for (const KvmMemslot& s : slots_) {
      backed += Overlap(r.gpa, r.bytes, s.gpa, s.bytes);
    }
    if (r.bytes == 0 || r.gpa % kKvmPageBytes != 0 ||
        r.bytes % kKvmPageBytes != 0 || backed != r.bytes) {
      return InvalidArgumentError(
          std::string(source) + ": range " + Describe(r.gpa, r.bytes) +
          " must be non-empty, 4 KiB aligned and backed by memslots");
    }
  }
  for (size_t i = 0; i < slots_.size(); ++i) {
    KvmMemslot& s = slots_[i];
    const bool touched = std::any_of(
        ranges.begin(), ranges.end(), [&](const GpaRange& r) {
          return Overlap(r.gpa, r.bytes, s.gpa, s.bytes) != 0;
        });
    if (!touched) continue;
    KvmMemslot updated = s;
    updated.flags |= KVM_MEM_LOG_DIRTY_PAGES;
    Status st = KvmSetMemslot(kernel_, vm_fd_, updated);
    if (!st.ok()) {
      (void)Disable();  // unwind the slots already logging
      return st.WithContext(std::string(source) + ": start dirty logging");
    }
    s = updated;
    logging_[i] = true;
  }
  ranges_.assign(ranges.begin(), ranges.end());
  enabled_ = true;
  return OkStatus();
}

Status KvmLoggedSlots::Disable() {
  Status first;
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (!logging_[i]) continue;
    KvmMemslot updated = slots_[i];
    updated.flags &= ~static_cast<uint32_t>(KVM_MEM_LOG_DIRTY_PAGES);
    Status st = KvmSetMemslot(kernel_, vm_fd_, updated);
    if (!st.ok()) {
      if (first.ok()) first = st;
      continue;
    }
    slots_[i] = updated;
    logging_[i] = false;
  }
  ranges_.clear();
  enabled_ = false;
  return first;
}

Status KvmLoggedSlots::CheckWindow(uint64_t gpa, uint64_t num_pages,
                                   std::string_view source) const {
  if (!enabled_) {
    return FailedPreconditionError(std::string(source) + ": not started");
  }
  const uint64_t bytes = num_pages * kKvmPageBytes;
  const bool inside = std::any_of(
      ranges_.begin(), ranges_.end(), [&](const GpaRange& r) {
        return gpa >= r.gpa && bytes <= r.bytes && gpa - r.gpa <= r.bytes - bytes;
      });
  if (num_pages == 0 || gpa % kKvmPageBytes != 0 ||
      num_pages > (UINT64_MAX / kKvmPageBytes) || !inside) {
    return InvalidArgumentError(
        std::string(source) + ": window " + Describe(gpa, bytes) +
        " must be non-empty, page aligned and inside one tracked range");
  }
  return OkStatus();
}

std::vector<SlotPiece> KvmLoggedSlots::Pieces(uint64_t gpa,
                                              uint64_t num_pages) const {
  std::vector<SlotPiece> pieces;
  const uint64_t first = gpa / kKvmPageBytes;
  const uint64_t end = first + num_pages;
  for (size_t i = 0; i < slots_.size(); ++i) {
    const KvmMemslot& s = slots_[i];
    const uint64_t lo = std::max(first, s.first_page());
    const uint64_t hi = std::min(end, s.first_page() + s.num_pages());
    if (hi <= lo) continue;
    assert(logging_[i]);
    pieces.push_back(
        SlotPiece{i, lo - s.first_page(), hi - lo, lo - first});
  }
  return pieces;
}

uint64_t KvmLoggedSlots::end_page() const {
  uint64_t end = 0;
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (logging_[i]) {
      end = std::max(end, slots_[i].first_page() + slots_[i].num_pages());
    }
  }
  return end;
}

}  // namespace converge
