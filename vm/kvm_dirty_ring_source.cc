#include "vm/kvm_dirty_ring_source.h"

#include <atomic>
#include <chrono>
#include <string>

#include "iommu/bit_range.h"

namespace converge {
namespace {

constexpr std::string_view kName = "kvm-ring";

uint64_t NowNs() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

}  // namespace

KvmDirtyRingSource::KvmDirtyRingSource(Kernel& kernel, int vm_fd,
                                       std::vector<KvmMemslot> slots,
                                       std::vector<KvmDirtyRing> rings)
    : kernel_(kernel), vm_fd_(vm_fd), slots_(kernel, vm_fd, std::move(slots)) {
  for (const KvmDirtyRing& r : rings) {
    assert(r.num_entries != 0 && (r.num_entries & (r.num_entries - 1)) == 0);
    rings_.push_back(Ring{r, 0});
  }
}

KvmDirtyRingSource::~KvmDirtyRingSource() { (void)Stop(); }

DirtySourceLimits KvmDirtyRingSource::limits() const {
  DirtySourceLimits l;
  l.page_size_bytes = kKvmPageBytes;
  return l;
}

Status KvmDirtyRingSource::Start(std::span<const GpaRange> ranges,
                                 uint64_t ram_page_size) {
  if (slots_.enabled()) return FailedPreconditionError("kvm-ring: started");
  if (ram_page_size != kKvmPageBytes) {
    return InvalidArgumentError("kvm-ring: RAM page size " +
                                std::to_string(ram_page_size) +
                                " is not supported, only 4096");
  }
  if (rings_.empty()) {
    return FailedPreconditionError(
        "kvm-ring: no rings (create the VM with dirty_ring_bytes)");
  }
  std::lock_guard lock(mu_);
  CONVERGE_RETURN_IF_ERROR(slots_.Enable(ranges, kName));
  accumulated_ = DirtyBitmap(slots_.end_page());
  return OkStatus();
}

Status KvmDirtyRingSource::Stop() {
  std::lock_guard lock(mu_);
  if (!slots_.enabled()) return OkStatus();
  Status s = slots_.Disable();
  // Entries pushed before logging stopped would otherwise keep the ring
  // full; they have nowhere to go now.
  Status drained = CollectLocked();
  accumulated_ = DirtyBitmap();
  unprotected_.clear();
  if (!s.ok()) return s.WithContext(kName);
  return drained.WithContext(kName);
}

KvmDirtyRingStats KvmDirtyRingSource::ring_stats() const {
  std::lock_guard lock(mu_);
  return ring_stats_;
}

Status KvmDirtyRingSource::Collect() {
  std::lock_guard lock(mu_);
  return CollectLocked();
}

void KvmDirtyRingSource::DrainLocked(Ring& r, std::vector<uint64_t>& pages) {
  const uint32_t mask = r.ring.num_entries - 1;
  for (;;) {
    kvm_dirty_gfn& gfn = r.ring.gfns[r.fetch & mask];
    // Acquire: pairs with the kernel's release when it publishes DIRTY, so
    // slot and offset below are the values it wrote for this entry.
    const uint32_t flags =
        std::atomic_ref<uint32_t>(gfn.flags).load(std::memory_order_acquire);
    if ((flags & KVM_DIRTY_GFN_F_DIRTY) == 0) break;
    const uint32_t slot_id = gfn.slot;
    const uint64_t offset = gfn.offset;
    // Release: our reads of slot and offset happen before the kernel can
    // see RESET and recycle the entry (KVM_RESET_DIRTY_RINGS).
    std::atomic_ref<uint32_t>(gfn.flags)
        .store(KVM_DIRTY_GFN_F_RESET, std::memory_order_release);
    ++r.fetch;
    bool known = false;
    for (size_t i = 0; i < slots_.slots().size(); ++i) {
      const KvmMemslot& s = slots_.slots()[i];
      if (s.slot == slot_id && slots_.logging(i) && offset < s.num_pages()) {
        pages.push_back(s.first_page() + offset);
        known = true;
        break;
      }
    }
    if (!known) ++ring_stats_.foreign_entries;
  }
}

Status KvmDirtyRingSource::CollectLocked() {
  std::vector<uint64_t> pages;
  for (Ring& r : rings_) DrainLocked(r, pages);
  ring_stats_.entries_collected += pages.size();
  for (uint64_t page : pages) {
    if (page < accumulated_.num_pages()) accumulated_.Set(page);
  }
  if (pages.empty() && unprotected_.empty()) return OkStatus();
  Result<int> reset = KvmResetDirtyRings(kernel_, vm_fd_);
  if (!reset.ok()) {
    ++ring_stats_.reset_failures;
    unprotected_.insert(unprotected_.end(), pages.begin(), pages.end());
    return reset.status().WithContext(
        "kvm-ring: " + std::to_string(unprotected_.size()) +
        " collected pages stay unprotected");
  }
  ++ring_stats_.resets;
  // Pages collected before a failed reset may have been harvested and read
  // while still writable: report them once more now that they are armed.
  for (uint64_t page : unprotected_) {
    if (page < accumulated_.num_pages()) accumulated_.Set(page);
  }
  unprotected_.clear();
  return OkStatus();
}

Status KvmDirtyRingSource::Harvest(uint64_t gpa, uint64_t num_pages,
                                   DirtyBitmap& out, uint64_t out_first_page) {
  const uint64_t start_ns = NowNs();
  ++stats_.harvests;
  const bool fits = out_first_page <= out.num_pages() &&
                    num_pages <= out.num_pages() - out_first_page;
  std::unique_lock lock(mu_);
  Status s = slots_.CheckWindow(gpa, num_pages, kName);
  if (s.ok() && !fits) {
    s = InvalidArgumentError("kvm-ring: window does not fit the output "
                             "bitmap at page " +
                             std::to_string(out_first_page));
  }
  if (s.ok()) {
    ++stats_.kernel_calls;
    s = CollectLocked();
  }
  if (s.ok()) {
    const uint64_t first = gpa / kKvmPageBytes;
    stats_.pages_reported +=
        OrBitRange(accumulated_.words().data(), first, out.words().data(),
                   out_first_page, num_pages);
    accumulated_.ClearRange(first, num_pages);
  }
  lock.unlock();
  if (!s.ok()) {
    if (fits) {
      out.SetRange(out_first_page, num_pages);
      stats_.pages_marked_on_error += num_pages;
    }
    ++stats_.errors;
    char window[80];
    snprintf(window, sizeof window, "kvm-ring: window [0x%llx, +%llu pages)",
             static_cast<unsigned long long>(gpa),
             static_cast<unsigned long long>(num_pages));
    stats_.last_error = s.WithContext(window);
    s = stats_.last_error;
  }
  stats_.harvest_ns += NowNs() - start_ns;
  return s;
}

}  // namespace converge
