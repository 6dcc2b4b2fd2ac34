#include "vm/kvm_dirty_ring_source.h"

#include <atomic>
#include <algorithm>
#include <chrono>
#include <string>

#include "iommu/bit_range.h"

namespace converge {
namespace {

constexpr std::string_view kName = "kvm-ring";

// A slot id KVM's reset skips (address space 0xffff): entries the source
// writes itself, to move KVM's reset index, re-protect nothing.
constexpr uint32_t kNoSlot = 0xffffffff;
// KVM_DIRTY_RING_RSVD_ENTRIES plus the largest CPU dirty log (the x86 PML
// buffer): a ring's soft limit is at least its size minus this.
constexpr uint32_t kMaxReservedEntries = 64 + 512;
// KVM_RESET_DIRTY_RINGS calls per collection while KVM keeps making
// progress (a kernel may reset a bounded batch per call).
constexpr int kMaxResetCalls = 8;

std::atomic_ref<uint32_t> Flags(kvm_dirty_gfn& gfn) {
  return std::atomic_ref<uint32_t>(gfn.flags);
}

// Makes gfn an entry of the source's own: KVM walks over it when it is
// RESET and re-protects nothing.
void WriteOwnEntry(kvm_dirty_gfn& gfn, uint32_t flags) {
  gfn.slot = kNoSlot;
  gfn.offset = 0;
  Flags(gfn).store(flags, std::memory_order_release);
}

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
  ranges_.assign(ranges.begin(), ranges.end());
  accumulated_ = DirtyBitmap(slots_.end_page());
  return OkStatus();
}

Status KvmDirtyRingSource::Stop() {
  std::lock_guard lock(mu_);
  if (!slots_.enabled()) return OkStatus();
  Status s = slots_.Disable();
  // Entries pushed before logging stopped would otherwise keep the ring
  // full; they have nowhere to go now.
  Status drained = CollectLocked(nullptr);
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
  return CollectLocked(nullptr);
}

Status KvmDirtyRingSource::CollectFull(int vcpu_fd) {
  std::lock_guard lock(mu_);
  for (Ring& r : rings_) {
    if (r.ring.vcpu_fd != vcpu_fd) continue;
    Status s = CollectLocked(&r);
    r.armed = true;
    r.armed_epoch = r.epoch;
    return s;
  }
  return InvalidArgumentError("kvm-ring: no dirty ring for vCPU fd " +
                              std::to_string(vcpu_fd));
}

bool KvmDirtyRingSource::DrainLocked(Ring& r, std::vector<uint64_t>& pages) {
  const uint32_t size = r.ring.num_entries;
  const uint32_t mask = size - 1;
  for (;;) {
    kvm_dirty_gfn& gfn = r.ring.gfns[r.fetch & mask];
    // Acquire: pairs with the kernel's release when it publishes DIRTY, so
    // slot and offset below are the values it wrote for this entry.
    const uint32_t flags = Flags(gfn).load(std::memory_order_acquire);
    if ((flags & KVM_DIRTY_GFN_F_DIRTY) == 0) return true;
    const uint32_t slot_id = gfn.slot;
    const uint64_t offset = gfn.offset;
    // Release: our reads of slot and offset happen before the kernel can
    // see RESET and recycle the entry (KVM_RESET_DIRTY_RINGS).
    Flags(gfn).store(KVM_DIRTY_GFN_F_RESET, std::memory_order_release);
    ++r.fetch;
    ++ring_stats_.entries_collected;
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
    // A whole ring of entries and none reset yet: KVM either filled it to
    // the last entry or went past and overwrote entries never read. The two
    // look alike from here, so take the one that loses nothing.
    if (r.fetch - r.kernel_reset == size) return false;
  }
}

KvmDirtyRingSource::AckResult KvmDirtyRingSource::AckResetLocked(Ring& r) {
  const uint32_t mask = r.ring.num_entries - 1;
  // KVM resets a contiguous stretch from its reset index and zeroes each
  // entry; every entry in [kernel_reset, fetch) was RESET before the call.
  uint32_t reset_end = r.kernel_reset;
  for (uint32_t i = r.kernel_reset; i != r.fetch; ++i) {
    const uint32_t flags =
        Flags(r.ring.gfns[i & mask]).load(std::memory_order_acquire);
    if (flags == 0) reset_end = i + 1;
  }
  if (reset_end != r.kernel_reset) ++r.epoch;
  r.kernel_reset = reset_end;
  if (r.kernel_reset == r.fetch) return AckResult::kDone;
  const uint32_t flags =
      Flags(r.ring.gfns[r.kernel_reset & mask]).load(std::memory_order_acquire);
  // Still RESET: KVM stopped early and continues on the next call. DIRTY:
  // KVM pushed over an entry it had not reset, so the ring overran.
  return flags == KVM_DIRTY_GFN_F_RESET ? AckResult::kMore
                                        : AckResult::kOverrun;
}

void KvmDirtyRingSource::MarkLostLocked(Ring& r) {
  ++ring_stats_.overflows;
  r.lost = true;
  r.stepped = false;
  ++r.epoch;
  rearm_pending_ = true;
  for (uint32_t i = 0; i < r.ring.num_entries; ++i) {
    WriteOwnEntry(r.ring.gfns[i], 0);
  }
  r.fetch = r.kernel_reset;
}

Status KvmDirtyRingSource::ResyncLocked(Ring& r, bool full_exit,
                                        bool may_step) {
  const uint32_t size = r.ring.num_entries;
  const uint32_t mask = size - 1;
  // KVM pushes in order into a ring wiped to zero: the start of a DIRTY run
  // nearest after kernel_reset is where its dirty index was. Anything KVM
  // pushed before that lies in pages RearmAllLocked() reports.
  uint32_t dirty = 0;
  uint32_t nearest = size;
  for (uint32_t pos = 0; pos < size; ++pos) {
    auto is_dirty = [&](uint32_t p) {
      return (Flags(r.ring.gfns[p & mask]).load(std::memory_order_acquire) &
              KVM_DIRTY_GFN_F_DIRTY) != 0;
    };
    if (!is_dirty(pos)) continue;
    ++dirty;
    if (!is_dirty(pos + size - 1)) {
      nearest = std::min(nearest, (pos - r.kernel_reset) & mask);
    }
  }
  if (dirty == size) {
    MarkLostLocked(r);
    return OkStatus();
  }
  if (nearest != size && !r.stepped) {
    // Pushed while KVM's dirty index may still be more than a ring ahead:
    // the position says nothing. A full exit stops the pushes; start over
    // from there.
    if (full_exit) MarkLostLocked(r);
    return OkStatus();
  }
  if (nearest != size) {
    // KVM walks our own RESET entries up to its dirty index, then the
    // entries the drain reads next.
    const uint32_t dirty_index = r.kernel_reset + nearest;
    for (uint32_t i = r.kernel_reset; i != dirty_index; ++i) {
      WriteOwnEntry(r.ring.gfns[i & mask], KVM_DIRTY_GFN_F_RESET);
    }
    r.fetch = dirty_index;
    r.lost = false;
    ++ring_stats_.resyncs;
    return OkStatus();
  }
  if (!may_step) return OkStatus();
  // The vCPU exited full and nothing reset this ring since the exit before:
  // KVM's dirty index is at least a soft limit ahead of its reset index, so
  // moving the reset index by no more than the smallest soft limit cannot
  // pass it. The next entry shows where KVM pushes.
  const uint32_t step =
      size > kMaxReservedEntries ? size - kMaxReservedEntries : 1;
  for (uint32_t i = r.kernel_reset; i != r.kernel_reset + step; ++i) {
    WriteOwnEntry(r.ring.gfns[i & mask], KVM_DIRTY_GFN_F_RESET);
  }
  r.fetch = r.kernel_reset + step;
  ++ring_stats_.reset_steps;
  Result<int> reset = KvmResetDirtyRings(kernel_, vm_fd_);
  if (reset.ok()) (void)AckResetLocked(r);
  // Whatever KVM did not take goes back to zero so it cannot be walked
  // later by mistake; the next full exit steps again.
  for (uint32_t i = r.kernel_reset; i != r.fetch; ++i) {
    WriteOwnEntry(r.ring.gfns[i & mask], 0);
  }
  r.fetch = r.kernel_reset;
  r.stepped = true;
  ++r.epoch;
  if (!reset.ok()) {
    ++ring_stats_.reset_failures;
    return reset.status().WithContext("kvm-ring: resynchronising a ring");
  }
  return OkStatus();
}

Status KvmDirtyRingSource::RearmAllLocked() {
  // Pages whose entries KVM overwrote stay writable: turning logging off and
  // on write-protects every page again, and every page is reported once.
  Status s = slots_.Disable();
  if (s.ok()) s = slots_.Enable(ranges_, kName);
  accumulated_.SetRange(0, accumulated_.num_pages());
  if (!s.ok()) return s.WithContext("kvm-ring: re-arming after an overrun");
  rearm_pending_ = false;
  return OkStatus();
}

Status KvmDirtyRingSource::CollectLocked(Ring* full_ring) {
  std::vector<uint64_t> pages;
  for (Ring& r : rings_) {
    const bool full_exit = &r == full_ring;
    const bool second_exit = full_exit && r.armed && r.epoch == r.armed_epoch;
    if (r.lost) {
      CONVERGE_RETURN_IF_ERROR(ResyncLocked(r, full_exit, second_exit));
      if (r.lost) continue;
    }
    const uint32_t fetched = r.fetch;
    if (!DrainLocked(r, pages)) {
      MarkLostLocked(r);
    } else if (second_exit && r.fetch == fetched &&
               r.kernel_reset == r.fetch) {
      // KVM still calls the ring full though nothing was pushed or reset
      // since the last full exit and it looks empty from here: the indexes
      // disagree (an overrun went unseen).
      MarkLostLocked(r);
    }
  }
  for (uint64_t page : pages) {
    if (page < accumulated_.num_pages()) accumulated_.Set(page);
  }
  bool pending = !unprotected_.empty();
  for (const Ring& r : rings_) pending |= r.fetch != r.kernel_reset;
  if (pending) {
    for (int call = 1;; ++call) {
      Result<int> reset = KvmResetDirtyRings(kernel_, vm_fd_);
      if (!reset.ok()) {
        ++ring_stats_.reset_failures;
        unprotected_.insert(unprotected_.end(), pages.begin(), pages.end());
        return reset.status().WithContext(
            "kvm-ring: " + std::to_string(unprotected_.size()) +
            " collected pages stay unprotected");
      }
      bool more = false;
      for (Ring& r : rings_) {
        if (r.lost || r.fetch == r.kernel_reset) continue;
        switch (AckResetLocked(r)) {
          case AckResult::kDone:
            break;
          case AckResult::kMore:
            // KVM reset nothing more, or keeps stopping: its reset index
            // is not where this ring's entries say.
            if (*reset == 0 || call == kMaxResetCalls) {
              MarkLostLocked(r);
            } else {
              more = true;
            }
            break;
          case AckResult::kOverrun:
            MarkLostLocked(r);
            break;
        }
      }
      if (!more) break;
    }
    ++ring_stats_.resets;
    // Pages collected before a failed reset may have been harvested and
    // read while still writable: report them once more now that they are
    // armed.
    for (uint64_t page : unprotected_) {
      if (page < accumulated_.num_pages()) accumulated_.Set(page);
    }
    unprotected_.clear();
  }
  // While a ring is lost its entries are not read: report everything.
  for (const Ring& r : rings_) {
    if (r.lost) accumulated_.SetRange(0, accumulated_.num_pages());
  }
  if (rearm_pending_ && slots_.enabled()) return RearmAllLocked();
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
    s = CollectLocked(nullptr);
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
