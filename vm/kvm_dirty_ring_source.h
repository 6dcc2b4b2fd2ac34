// KvmDirtyRingSource: a DirtySource over KVM's per-vCPU dirty rings
// (KVM_CAP_DIRTY_LOG_RING[_ACQ_REL], enabled when the VM is created:
// MicroVmOptions::dirty_ring_bytes).
//
// Collect() drains every ring in order from its fetch index into an
// accumulator bitmap (GPA-page indexed), marks the entries RESET and then
// calls KVM_RESET_DIRTY_RINGS, which re-write-protects the collected pages.
// The reset must happen before the sender reads those pages: a page stays
// writable without a new ring entry until it is reset, so a write between a
// read and a later reset would never be seen. Harvest() collects first, so
// its window is reset before the caller reads it.
//
// A full ring stops the vCPU with KVM_EXIT_DIRTY_RING_FULL; the owner of the
// vCPU calls Collect() from its thread (MicroVm::SetDirtyRingFullHandler)
// and re-enters.
//
// Failure: if the reset fails, the collected pages are not protected; they
// are kept and set dirty again after the first reset that succeeds, and the
// failing harvest marks its whole window dirty.
//
// Thread-safety: Collect() may run on any thread concurrently with the rest
// (a mutex guards the rings and the accumulator); the other methods are
// called by one thread at a time (DirtySource contract).

#ifndef CONVERGE_VM_KVM_DIRTY_RING_SOURCE_H_
#define CONVERGE_VM_KVM_DIRTY_RING_SOURCE_H_

#include <cstdint>
#include <mutex>
#include <span>
#include <vector>

#include "bitmap/dirty_bitmap.h"
#include "iommu/dirty_source.h"
#include "iommu/kernel.h"
#include "vm/kvm_calls.h"
#include "vm/kvm_logged_slots.h"

namespace converge {

struct KvmDirtyRingStats {
  uint64_t entries_collected = 0;  // ring entries turned into dirty bits
  uint64_t resets = 0;             // successful KVM_RESET_DIRTY_RINGS
  uint64_t reset_failures = 0;
  uint64_t foreign_entries = 0;    // entries for slots this source ignores
};

class KvmDirtyRingSource final : public DirtySource {
 public:
  // rings: one per vCPU (MicroVm::dirty_rings()). REQUIRES: they stay
  // mapped for the life of this source, so tear down in this order: pause
  // the vCPUs, destroy the source, destroy the VM.
  KvmDirtyRingSource(Kernel& kernel, int vm_fd, std::vector<KvmMemslot> slots,
                     std::vector<KvmDirtyRing> rings);
  ~KvmDirtyRingSource() override;

  std::string_view name() const override { return "kvm-ring"; }
  // REQUIRES: ram_page_size == 4096.
  Status Start(std::span<const GpaRange> ranges,
               uint64_t ram_page_size) override;
  Status Harvest(uint64_t gpa, uint64_t num_pages, DirtyBitmap& out,
                 uint64_t out_first_page) override;
  // Stops logging and drains what the rings still hold.
  Status Stop() override;
  DirtySourceLimits limits() const override;

  // Drains every ring into the accumulator and resets them. Safe from any
  // thread (the vCPU thread calls it on a full ring).
  [[nodiscard]] Status Collect();
  KvmDirtyRingStats ring_stats() const;

 private:
  struct Ring {
    KvmDirtyRing ring;
    uint32_t fetch = 0;  // next entry to look at; only ever grows
  };

  // REQUIRES: mu_ held.
  Status CollectLocked();
  void DrainLocked(Ring& ring, std::vector<uint64_t>& pages);

  Kernel& kernel_;
  const int vm_fd_;
  KvmLoggedSlots slots_;

  mutable std::mutex mu_;
  std::vector<Ring> rings_;
  DirtyBitmap accumulated_;            // GPA pages collected, not harvested
  std::vector<uint64_t> unprotected_;  // collected, reset still pending
  KvmDirtyRingStats ring_stats_;
};

}  // namespace converge

#endif  // CONVERGE_VM_KVM_DIRTY_RING_SOURCE_H_
