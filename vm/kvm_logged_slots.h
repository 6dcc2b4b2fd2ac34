// KvmLoggedSlots: the memslots of one VM that a KVM dirty source tracks,
// and the KVM_MEM_LOG_DIRTY_PAGES flag on them. Shared by the dirty-log and
// dirty-ring sources: both turn logging on per slot, and both accept
// harvest windows that lie in one tracked GPA range and may cross slots.
//
// Thread-safety: none; owned by one source.

#ifndef CONVERGE_VM_KVM_LOGGED_SLOTS_H_
#define CONVERGE_VM_KVM_LOGGED_SLOTS_H_

#include <cstdint>
#include <span>
#include <vector>

#include "base/status.h"
#include "iommu/dirty_source.h"
#include "iommu/kernel.h"
#include "vm/kvm_calls.h"

namespace converge {

// The part of a harvest window that falls in one slot.
struct SlotPiece {
  size_t slot_index = 0;     // into KvmLoggedSlots::slots()
  uint64_t slot_page = 0;    // first page, relative to the slot
  uint64_t num_pages = 0;
  uint64_t window_page = 0;  // first page, relative to the window
};

class KvmLoggedSlots {
 public:
  KvmLoggedSlots(Kernel& kernel, int vm_fd, std::vector<KvmMemslot> slots);

  // Checks that ranges are 4 KiB aligned, non-empty and fully backed by
  // slots, then sets KVM_MEM_LOG_DIRTY_PAGES on every slot they touch. On
  // failure no slot is left logging. `source` names the caller in errors.
  // REQUIRES: not enabled.
  [[nodiscard]] Status Enable(std::span<const GpaRange> ranges,
                              std::string_view source);
  // Clears the flag on the slots Enable set it on; returns the first error.
  [[nodiscard]] Status Disable();
  bool enabled() const { return enabled_; }

  // OK when [gpa, gpa + num_pages pages) is non-empty, page aligned and
  // inside one tracked range.
  [[nodiscard]] Status CheckWindow(uint64_t gpa, uint64_t num_pages,
                                   std::string_view source) const;
  // The window split at slot boundaries, ascending.
  // REQUIRES: CheckWindow(gpa, num_pages).ok().
  std::vector<SlotPiece> Pieces(uint64_t gpa, uint64_t num_pages) const;

  const std::vector<KvmMemslot>& slots() const { return slots_; }
  // Whether slots()[i] is logging.
  bool logging(size_t i) const { return logging_[i]; }
  // One past the highest guest page of a logging slot.
  uint64_t end_page() const;

 private:
  Kernel& kernel_;
  const int vm_fd_;
  std::vector<KvmMemslot> slots_;
  std::vector<bool> logging_;
  std::vector<GpaRange> ranges_;
  bool enabled_ = false;
};

}  // namespace converge

#endif  // CONVERGE_VM_KVM_LOGGED_SLOTS_H_
