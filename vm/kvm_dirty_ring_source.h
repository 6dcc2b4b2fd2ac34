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
// vCPU calls CollectFull(vcpu_fd) from that vCPU's thread
// (MicroVm::SetDirtyRingFullHandler) and re-enters.
//
// Overflow. KVM asks the vCPU to exit once a ring holds its soft limit
// (size - 64 - the PML buffer); pushes in the same KVM_RUN must fit the
// reserve. Some backends ignore the request for long stretches: under the
// PVM backend (kvm_pvm, nested hosts) the instruction emulator writes guest
// memory page after page in one KVM_RUN and overruns even 64 KiB rings
// (kernel WARN in kvm_dirty_ring_push). KVM then overwrites entries nobody
// has read, their pages stay writable forever, and its reset index stops on
// an entry it already cleared, so the vCPU exits "ring full" for ever
// (seen here: 16 and 64 KiB rings overrun on their first full exits). The
// source detects it (a whole ring read with none of it reset yet, a reset
// that stops on an entry KVM overwrote, or a full exit with the ring empty
// from here), then: every tracked page is reported dirty, logging is turned
// off and on (KVM write-protects every page again) and the ring is wiped.
// While a ring is lost every harvest reports every page. On a second full
// exit of its vCPU with no reset in between, KVM's dirty index is known to
// be a soft limit ahead, so its reset index is walked forward by a step that
// cannot pass it (size - 576, the largest x86 reserve); once KVM pushes
// again the first new entry shows its dirty index and the ring is back in
// step (ring_stats(): overflows, reset_steps, resyncs). A ring overrun just
// before the guest goes idle stays lost, reporting everything, until its
// vCPU next exits full. Nothing is lost; precision is.
//
// Failure: if the reset fails, the collected pages are not protected; they
// are kept and set dirty again after the first reset that succeeds, and the
// failing harvest marks its whole window dirty.
//
// Thread-safety: Collect() may run on any thread and CollectFull() on the
// vCPU's thread, concurrently with the rest (a mutex guards the rings and
// the accumulator); the other methods are called by one thread at a time
// (DirtySource contract).

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
  uint64_t entries_collected = 0;  // DIRTY ring entries read
  uint64_t resets = 0;             // successful KVM_RESET_DIRTY_RINGS
  uint64_t reset_failures = 0;
  uint64_t foreign_entries = 0;    // entries for slots this source ignores
  uint64_t overflows = 0;   // rings KVM overran; all pages reported dirty
  uint64_t resyncs = 0;     // overrun rings back in step with KVM
  uint64_t reset_steps = 0;  // full exits spent walking a lost ring
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
  // thread.
  [[nodiscard]] Status Collect();
  // Collect() for a KVM_EXIT_DIRTY_RING_FULL of vcpu_fd. REQUIRES: called
  // on that vCPU's thread before it re-enters: only then may an overrun
  // ring be walked forward. An unknown vcpu_fd is kInvalidArgument.
  [[nodiscard]] Status CollectFull(int vcpu_fd);
  KvmDirtyRingStats ring_stats() const;

 private:
  // Indexes run free like KVM's (entry = index % size).
  struct Ring {
    KvmDirtyRing ring;
    uint32_t fetch = 0;         // next entry to read
    uint32_t kernel_reset = 0;  // KVM's reset index: entries before it reset
    bool lost = false;          // overrun: KVM's dirty index is unknown
    bool stepped = false;       // lost, and KVM pushes only from a known gap
    uint64_t epoch = 0;         // bumped whenever kernel_reset moves
    // A full exit was handled at this epoch: if the next full exit finds
    // the epoch unchanged, KVM's dirty index is a soft limit ahead.
    bool armed = false;
    uint64_t armed_epoch = 0;
  };

  enum class AckResult : uint8_t { kDone, kMore, kOverrun };

  // REQUIRES: mu_ held. full_ring: the ring whose vCPU exited full, or null.
  Status CollectLocked(Ring* full_ring);
  // Reads DIRTY entries from fetch; false when the ring turned out overrun.
  bool DrainLocked(Ring& ring, std::vector<uint64_t>& pages);
  // After KVM_RESET_DIRTY_RINGS: advances kernel_reset over the entries KVM
  // reset and says whether entries remain (kMore) or KVM stopped on an
  // entry it overwrote (kOverrun).
  AckResult AckResetLocked(Ring& ring);
  void MarkLostLocked(Ring& ring);
  // A lost ring: finds KVM's dirty index from new pushes, or, when may_step
  // (a second full exit with no reset since the first), walks KVM's reset
  // index forward by one step that cannot pass its dirty index.
  Status ResyncLocked(Ring& ring, bool full_exit, bool may_step);
  // After an overrun: every page dirty, every page write-protected again.
  Status RearmAllLocked();

  Kernel& kernel_;
  const int vm_fd_;
  KvmLoggedSlots slots_;
  std::vector<GpaRange> ranges_;  // as given to Start()

  mutable std::mutex mu_;
  std::vector<Ring> rings_;
  DirtyBitmap accumulated_;            // GPA pages collected, not harvested
  std::vector<uint64_t> unprotected_;  // collected, reset still pending
  bool rearm_pending_ = false;         // a ring overran since the last rearm
  KvmDirtyRingStats ring_stats_;
};

}  // namespace converge

#endif  // CONVERGE_VM_KVM_DIRTY_RING_SOURCE_H_
