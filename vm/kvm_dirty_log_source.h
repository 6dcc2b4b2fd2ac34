// KvmDirtyLogSource: a DirtySource over KVM's per-memslot dirty bitmap
// (KVM_GET_DIRTY_LOG), with or without manual protect.
//
// With manual protect (KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, the default), GET
// only reports and Rearm() re-protects a window with KVM_CLEAR_DIRTY_LOG
// just before the caller sends it, clearing only the bits this source
// reported there (as QEMU does), so a write that lands after the report
// stays dirty. Without it, GET clears and re-protects the whole slot at
// once and Rearm() does nothing.
//
// GET always covers a whole slot. The slot's bitmap is cached: windows of
// one slot harvested in a pass cost one GET. A pass ends when a window
// reaches pages already reported since the slot's last GET; the next GET
// ORs into what the cache still holds, so no bit is dropped (without manual
// protect those bits are already cleared in the kernel). Callers that
// harvest only part of a slot and later want fresh data for the rest call
// InvalidateCache() (e.g. at switchover).
//
// Windows may be any page range inside one tracked range; Rearm() rounds the
// CLEAR to 64-page boundaries of the slot (KVM's rule) and masks the bitmap
// to the window, so no page outside the window is re-armed.
//
// Failure: a failed GET marks the whole window dirty, and the rest of that
// slot dirty for the windows that follow (the kernel may already have
// cleared them); a failed CLEAR leaves the pages dirty in the kernel and
// keeps them pending for the next Rearm().
//
// Thread-safety: one thread at a time (DirtySource contract).

#ifndef CONVERGE_VM_KVM_DIRTY_LOG_SOURCE_H_
#define CONVERGE_VM_KVM_DIRTY_LOG_SOURCE_H_

#include <cstdint>
#include <span>
#include <vector>

#include "bitmap/dirty_bitmap.h"
#include "iommu/dirty_source.h"
#include "iommu/kernel.h"
#include "vm/kvm_calls.h"
#include "vm/kvm_logged_slots.h"

namespace converge {

struct KvmDirtyLogOptions {
  // Report with GET, re-arm with CLEAR per window before it is sent. Off:
  // GET write-protects the whole slot at once and every vCPU write to a
  // page not yet sent faults again.
  bool manual_protect = true;
  // With manual protect: slots start all dirty rather than write-protecting
  // every mapped page at Start (Cloud Hypervisor measured ~0.1 vs 4-5 ms per
  // GiB); the first harvest then reports every page.
  bool initially_set = true;
};

class KvmDirtyLogSource final : public DirtySource {
 public:
  // slots: the VM's memslots (MicroVm::memslots()); their flags must match
  // what the VM has.
  KvmDirtyLogSource(Kernel& kernel, int vm_fd, std::vector<KvmMemslot> slots,
                    KvmDirtyLogOptions options = {});
  ~KvmDirtyLogSource() override;

  std::string_view name() const override { return "kvm-log"; }
  // Enables (or, without manual protect, disables) manual protect on the
  // VM, then starts logging on every slot the ranges touch.
  // REQUIRES: ram_page_size == 4096.
  Status Start(std::span<const GpaRange> ranges,
               uint64_t ram_page_size) override;
  Status Harvest(uint64_t gpa, uint64_t num_pages, DirtyBitmap& out,
                 uint64_t out_first_page) override;
  Status Rearm(uint64_t gpa, uint64_t num_pages) override;
  Status Stop() override;
  DirtySourceLimits limits() const override;

  // Makes the next harvest of every slot issue a fresh GET.
  void InvalidateCache();
  bool manual_protect() const { return options_.manual_protect; }

 private:
  struct SlotLog {
    DirtyBitmap cache;     // reported by GET, not yet handed out
    DirtyBitmap reported;  // handed out, not yet re-armed (manual protect)
    std::vector<uint64_t> scratch;  // GET target
    std::vector<PageRun> taken;     // windows handed out since the last GET
    bool fresh = false;             // a GET happened in this pass
  };

  Status Fetch(size_t slot_index);
  Status HarvestPieces(uint64_t gpa, uint64_t num_pages, DirtyBitmap& out,
                       uint64_t out_first_page);
  Status Fail(const Status& error, uint64_t gpa, uint64_t num_pages,
              DirtyBitmap& out, uint64_t out_first_page);

  Kernel& kernel_;
  const int vm_fd_;
  const KvmDirtyLogOptions options_;
  KvmLoggedSlots slots_;
  std::vector<SlotLog> logs_;  // parallel to slots_.slots()
};

}  // namespace converge

#endif  // CONVERGE_VM_KVM_DIRTY_LOG_SOURCE_H_
