#include "vm/kvm_dirty_log_source.h"

#include <algorithm>
#include <chrono>
#include <string>

#include "iommu/bit_range.h"

namespace converge {
namespace {

constexpr std::string_view kName = "kvm-log";

uint64_t NowNs() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

bool Overlaps(const std::vector<PageRun>& runs, uint64_t first,
              uint64_t count) {
  return std::any_of(runs.begin(), runs.end(), [&](const PageRun& r) {
    return first < r.first + r.count && r.first < first + count;
  });
}

std::string WindowName(uint64_t gpa, uint64_t num_pages) {
  char buf[96];
  snprintf(buf, sizeof buf, "kvm-log: window [0x%llx, +%llu pages)",
           static_cast<unsigned long long>(gpa),
           static_cast<unsigned long long>(num_pages));
  return buf;
}

}  // namespace

KvmDirtyLogSource::KvmDirtyLogSource(Kernel& kernel, int vm_fd,
                                     std::vector<KvmMemslot> slots,
                                     KvmDirtyLogOptions options)
    : kernel_(kernel),
      vm_fd_(vm_fd),
      options_(options),
      slots_(kernel, vm_fd, std::move(slots)) {}

KvmDirtyLogSource::~KvmDirtyLogSource() { (void)Stop(); }

DirtySourceLimits KvmDirtyLogSource::limits() const {
  DirtySourceLimits l;
  l.page_size_bytes = kKvmPageBytes;
  l.align_pages = 64;
  return l;
}

Status KvmDirtyLogSource::Start(std::span<const GpaRange> ranges,
                                uint64_t ram_page_size) {
  if (slots_.enabled()) return FailedPreconditionError("kvm-log: started");
  if (ram_page_size != kKvmPageBytes) {
    return InvalidArgumentError("kvm-log: RAM page size " +
                                std::to_string(ram_page_size) +
                                " is not supported, only 4096");
  }
  CONVERGE_ASSIGN_OR_RETURN(
      int supported,
      KvmCheckExtension(kernel_, vm_fd_, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2));
  uint64_t mode = 0;
  if (options_.manual_protect) {
    mode = KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE |
           (options_.initially_set ? KVM_DIRTY_LOG_INITIALLY_SET : 0);
    if ((static_cast<uint64_t>(supported) & mode) != mode) {
      return NotSupportedError("kvm-log: manual protect flags " +
                               std::to_string(mode) + " not in KVM's " +
                               std::to_string(supported));
    }
  }
  // Manual protect must be set (or cleared) before slots start logging:
  // INITIALLY_SET takes effect when a slot's bitmap is allocated.
  if (mode != 0 || supported != 0) {
    CONVERGE_RETURN_IF_ERROR(
        KvmEnableCap(kernel_, vm_fd_, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, mode)
            .WithContext(kName));
  }
  CONVERGE_RETURN_IF_ERROR(slots_.Enable(ranges, kName));
  logs_.clear();
  logs_.resize(slots_.slots().size());
  for (size_t i = 0; i < logs_.size(); ++i) {
    if (!slots_.logging(i)) continue;
    const KvmMemslot& s = slots_.slots()[i];
    logs_[i].cache = DirtyBitmap(s.num_pages());
    if (options_.manual_protect) logs_[i].reported = DirtyBitmap(s.num_pages());
    logs_[i].scratch.assign(s.bitmap_words(), 0);
  }
  return OkStatus();
}

Status KvmDirtyLogSource::Stop() {
  if (!slots_.enabled()) return OkStatus();
  Status s = slots_.Disable();
  logs_.clear();
  return s.WithContext(kName);
}

void KvmDirtyLogSource::InvalidateCache() {
  for (SlotLog& log : logs_) log.fresh = false;
}

Status KvmDirtyLogSource::Fetch(size_t slot_index) {
  const KvmMemslot& slot = slots_.slots()[slot_index];
  SlotLog& log = logs_[slot_index];
  ++stats_.kernel_calls;
  CONVERGE_RETURN_IF_ERROR(
      KvmGetDirtyLog(kernel_, vm_fd_, slot.slot, log.scratch));
  // OR, not assign: bits not yet handed out stay (without manual protect
  // the kernel has already forgotten them).
  std::span<uint64_t> cache = log.cache.words();
  for (size_t i = 0; i < cache.size(); ++i) cache[i] |= log.scratch[i];
  log.taken.clear();
  log.fresh = true;
  return OkStatus();
}

Status KvmDirtyLogSource::Harvest(uint64_t gpa, uint64_t num_pages,
                                  DirtyBitmap& out, uint64_t out_first_page) {
  const uint64_t start_ns = NowNs();
  ++stats_.harvests;
  Status s = HarvestPieces(gpa, num_pages, out, out_first_page);
  stats_.harvest_ns += NowNs() - start_ns;
  return s;
}

Status KvmDirtyLogSource::HarvestPieces(uint64_t gpa, uint64_t num_pages,
                                        DirtyBitmap& out,
                                        uint64_t out_first_page) {
  Status valid = slots_.CheckWindow(gpa, num_pages, kName);
  if (!valid.ok()) return Fail(valid, gpa, num_pages, out, out_first_page);
  if (out_first_page > out.num_pages() ||
      num_pages > out.num_pages() - out_first_page) {
    return InvalidArgumentError(WindowName(gpa, num_pages) +
                                " does not fit the output bitmap at page " +
                                std::to_string(out_first_page));
  }
  for (const SlotPiece& p : slots_.Pieces(gpa, num_pages)) {
    SlotLog& log = logs_[p.slot_index];
    if (!log.fresh || Overlaps(log.taken, p.slot_page, p.num_pages)) {
      Status st = Fetch(p.slot_index);
      if (!st.ok()) {
        // The kernel may have cleared the whole slot: report all of it.
        log.cache.SetRange(0, log.cache.num_pages());
        log.taken.clear();
        log.fresh = true;
        return Fail(st, gpa, num_pages, out, out_first_page);
      }
    }
    stats_.pages_reported +=
        OrBitRange(log.cache.words().data(), p.slot_page, out.words().data(),
                   out_first_page + p.window_page, p.num_pages);
    if (options_.manual_protect) {
      OrBitRange(log.cache.words().data(), p.slot_page,
                 log.reported.words().data(), p.slot_page, p.num_pages);
    }
    log.cache.ClearRange(p.slot_page, p.num_pages);
    log.taken.push_back(PageRun{p.slot_page, p.num_pages});
  }
  return OkStatus();
}

Status KvmDirtyLogSource::Fail(const Status& error, uint64_t gpa,
                               uint64_t num_pages, DirtyBitmap& out,
                               uint64_t out_first_page) {
  if (out_first_page <= out.num_pages() &&
      num_pages <= out.num_pages() - out_first_page) {
    out.SetRange(out_first_page, num_pages);
    stats_.pages_marked_on_error += num_pages;
  }
  ++stats_.errors;
  stats_.last_error = error.WithContext(WindowName(gpa, num_pages));
  return stats_.last_error;
}

Status KvmDirtyLogSource::Rearm(uint64_t gpa, uint64_t num_pages) {
  if (!options_.manual_protect) return OkStatus();
  CONVERGE_RETURN_IF_ERROR(slots_.CheckWindow(gpa, num_pages, kName));
  for (const SlotPiece& p : slots_.Pieces(gpa, num_pages)) {
    const KvmMemslot& slot = slots_.slots()[p.slot_index];
    SlotLog& log = logs_[p.slot_index];
    // KVM wants first_page and num_pages in multiples of 64 unless the
    // range ends the slot; the mask keeps pages outside the window armed.
    const uint64_t first = p.slot_page & ~uint64_t{63};
    const uint64_t end =
        std::min((p.slot_page + p.num_pages + 63) & ~uint64_t{63},
                 slot.num_pages());
    std::vector<uint64_t> bits((end - first + 63) / 64);
    if (OrBitRange(log.reported.words().data(), p.slot_page, bits.data(),
                   p.slot_page - first, p.num_pages) == 0) {
      continue;
    }
    ++stats_.kernel_calls;
    // A slot has fewer than 2^31 pages (KVM_MEM_MAX_NR_PAGES): fits u32.
    Status st = KvmClearDirtyLog(kernel_, vm_fd_, slot.slot, first,
                                 static_cast<uint32_t>(end - first), bits);
    if (!st.ok()) {
      ++stats_.errors;
      stats_.last_error = st.WithContext(WindowName(gpa, num_pages) +
                                         ": re-arm");
      return stats_.last_error;
    }
    log.reported.ClearRange(p.slot_page, p.num_pages);
  }
  return OkStatus();
}

}  // namespace converge
