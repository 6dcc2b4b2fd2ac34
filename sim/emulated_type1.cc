#include "sim/emulated_type1.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <iterator>
#include <string>
#include <vector>

#include "iommu/bit_range.h"
#include "iommu/uapi_compat.h"

namespace converge::sim {
namespace {

Status Err(int e, const std::string& what) {
  return ErrnoStatus(e, "emulated vfio type1: " + what);
}

bool Aligned(uint64_t v, uint64_t a) { return (v & (a - 1)) == 0; }

}  // namespace

EmulatedType1Container::EmulatedType1Container(EmulatedKernel& kernel,
                                               EmulatedType1Options options)
    : kernel_(kernel), options_(options) {
  assert(std::has_single_bit(options_.min_page_bytes) &&
         options_.min_page_bytes >= 4096);
  kernel_.AddDmaObserver(this);
}

EmulatedType1Container::~EmulatedType1Container() {
  kernel_.RemoveDmaObserver(this);
}

void EmulatedType1Container::Register(EmulatedKernel& kernel,
                                      EmulatedType1Options options,
                                      const std::string& path) {
  kernel.AddPath(path, [&kernel, options] {
    return std::make_shared<EmulatedType1Container>(kernel, options);
  });
}

bool EmulatedType1Container::tracking() const {
  std::lock_guard<std::mutex> lock(mu_);
  return tracking_;
}

size_t EmulatedType1Container::num_mappings() const {
  std::lock_guard<std::mutex> lock(mu_);
  return mappings_.size();
}

Result<int> EmulatedType1Container::Ioctl(unsigned long request, void* arg) {
  switch (request) {
    case VFIO_GET_API_VERSION:
      return VFIO_API_VERSION;
    case VFIO_CHECK_EXTENSION: {
      const auto ext = reinterpret_cast<uintptr_t>(arg);
      return ext == VFIO_TYPE1v2_IOMMU || ext == VFIO_TYPE1_IOMMU ? 1 : 0;
    }
    case VFIO_SET_IOMMU: {
      std::lock_guard<std::mutex> lock(mu_);
      if (reinterpret_cast<uintptr_t>(arg) != VFIO_TYPE1v2_IOMMU) {
        return Err(EINVAL, "SET_IOMMU: only VFIO_TYPE1v2_IOMMU is emulated");
      }
      if (iommu_set_) return Err(EBUSY, "SET_IOMMU: IOMMU already set");
      iommu_set_ = true;
      return 0;
    }
    default:
      break;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!iommu_set_ && (request == VFIO_IOMMU_GET_INFO ||
                        request == VFIO_IOMMU_MAP_DMA ||
                        request == VFIO_IOMMU_UNMAP_DMA ||
                        request == VFIO_IOMMU_DIRTY_PAGES)) {
      return Err(EINVAL, "no IOMMU set on the container");
    }
  }
  switch (request) {
    case VFIO_IOMMU_GET_INFO: return GetInfo(arg);
    case VFIO_IOMMU_MAP_DMA: return MapDma(arg);
    case VFIO_IOMMU_UNMAP_DMA: return UnmapDma(arg);
    case VFIO_IOMMU_DIRTY_PAGES: return DirtyPages(arg);
    default: return Err(ENOTTY, "unknown ioctl " + std::to_string(request));
  }
}

Result<int> EmulatedType1Container::GetInfo(void* arg) {
  if (arg == nullptr) return Err(EFAULT, "GET_INFO: null argument");
  vfio_iommu_type1_info info{};
  constexpr uint32_t kMinSize = offsetof(vfio_iommu_type1_info, cap_offset);
  constexpr uint32_t kCapSize = kMinSize + sizeof(info.cap_offset);
  std::memcpy(&info, arg, kMinSize);
  if (info.argsz < kMinSize) return Err(EINVAL, "GET_INFO: argsz too small");
  uint32_t copy_size = kMinSize;
  info.flags = VFIO_IOMMU_INFO_PGSIZES;
  info.iova_pgsizes = ~(options_.min_page_bytes - 1) & 0x0000'ffff'ffff'f000;
  if (info.argsz >= kCapSize) {
    copy_size = sizeof(info);
    info.cap_offset = 0;
    // The chain: DMA-available, then migration (the kernel builds several;
    // callers must walk it by id).
    vfio_iommu_type1_info_dma_avail avail{};
    vfio_iommu_type1_info_cap_migration mig{};
    const uint32_t avail_at = sizeof(info);
    const uint32_t mig_at = avail_at + sizeof(avail);
    avail.header.id = VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL;
    avail.header.version = 1;
    avail.header.next = mig_at;
    avail.avail = 65535;
    mig.header.id = VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION;
    mig.header.version = 1;
    mig.header.next = 0;
    mig.flags = 0;
    mig.pgsize_bitmap = options_.min_page_bytes;
    mig.max_dirty_bitmap_size = options_.max_dirty_bitmap_bytes;
    const uint32_t needed = mig_at + sizeof(mig);
    info.flags |= VFIO_IOMMU_INFO_CAPS;
    if (info.argsz < needed) {
      info.argsz = needed;  // the caller grows its buffer and asks again
    } else {
      info.cap_offset = avail_at;
      auto* base = static_cast<char*>(arg);
      std::memcpy(base + avail_at, &avail, sizeof(avail));
      std::memcpy(base + mig_at, &mig, sizeof(mig));
    }
  }
  std::memcpy(arg, &info, copy_size);
  return 0;
}

Result<int> EmulatedType1Container::MapDma(void* arg) {
  if (arg == nullptr) return Err(EFAULT, "MAP_DMA: null argument");
  vfio_iommu_type1_dma_map map;
  std::memcpy(&map, arg, sizeof(map));
  const uint32_t mask = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
  if (map.argsz < sizeof(map) || (map.flags & ~mask) != 0) {
    return Err(EINVAL, "MAP_DMA: bad argsz or flags");
  }
  const uint64_t pg = options_.min_page_bytes;
  if (map.size == 0 || !Aligned(map.iova, pg) || !Aligned(map.size, pg) ||
      !Aligned(map.vaddr, pg)) {
    return Err(EINVAL, "MAP_DMA: size zero or iova/size/vaddr not aligned");
  }
  if (map.iova + map.size - 1 < map.iova) {
    return Err(EINVAL, "MAP_DMA: iova + size overflows");
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto next = mappings_.lower_bound(map.iova);
  if (next != mappings_.end() && next->first < map.iova + map.size) {
    return Err(EEXIST, "MAP_DMA: overlaps an existing mapping");
  }
  if (next != mappings_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second.bytes > map.iova) {
      return Err(EEXIST, "MAP_DMA: overlaps an existing mapping");
    }
  }
  Mapping& m = mappings_[map.iova];
  m.bytes = map.size;
  m.vaddr = map.vaddr;
  if (tracking_) {
    m.dirty = DirtyBitmap(PagesOf(m.bytes));
    Repopulate(m);
  }
  return 0;
}

Result<int> EmulatedType1Container::UnmapDma(void* arg) {
  if (arg == nullptr) return Err(EFAULT, "UNMAP_DMA: null argument");
  vfio_iommu_type1_dma_unmap unmap;
  std::memcpy(&unmap, arg, sizeof(unmap));
  if (unmap.argsz < sizeof(unmap) || unmap.flags != 0) {
    return Err(EINVAL, "UNMAP_DMA: bad argsz or unsupported flags");
  }
  const uint64_t pg = options_.min_page_bytes;
  if (!Aligned(unmap.iova, pg) || !Aligned(unmap.size, pg) ||
      unmap.size == 0 || unmap.iova + unmap.size - 1 < unmap.iova) {
    return Err(EINVAL, "UNMAP_DMA: iova/size not aligned, zero or overflowing");
  }
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t end = unmap.iova + unmap.size;
  auto first = mappings_.lower_bound(unmap.iova);
  if (first != mappings_.begin()) {
    auto prev = std::prev(first);
    if (prev->first + prev->second.bytes > unmap.iova) {
      return Err(EINVAL, "UNMAP_DMA: range cuts through a mapping");
    }
  }
  auto last = first;
  uint64_t unmapped = 0;
  while (last != mappings_.end() && last->first < end) {
    if (last->first + last->second.bytes > end) {
      return Err(EINVAL, "UNMAP_DMA: range cuts through a mapping");
    }
    unmapped += last->second.bytes;
    ++last;
  }
  mappings_.erase(first, last);
  unmap.size = unmapped;
  std::memcpy(arg, &unmap, sizeof(unmap));
  return 0;
}

void EmulatedType1Container::Repopulate(Mapping& m) const {
  assert(!m.dirty.Any());
  if (!options_.pinned_page_dirty_scope) {
    m.dirty.SetRange(0, m.dirty.num_pages());
  } else if (m.pinned.num_pages() != 0) {
    m.dirty.MergeFrom(m.pinned);
  }
}

Result<int> EmulatedType1Container::DirtyPages(void* arg) {
  if (arg == nullptr) return Err(EFAULT, "DIRTY_PAGES: null argument");
  vfio_iommu_type1_dirty_bitmap head;
  std::memcpy(&head, arg, sizeof(head));
  constexpr uint32_t kMask = VFIO_IOMMU_DIRTY_PAGES_FLAG_START |
                             VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP |
                             VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;
  if (head.argsz < sizeof(head) || (head.flags & ~kMask) != 0) {
    return Err(EINVAL, "DIRTY_PAGES: argsz below 8 or unknown flags");
  }
  if (!std::has_single_bit(head.flags)) {
    return Err(EINVAL, "DIRTY_PAGES: exactly one flag must be set");
  }
  if (head.flags == VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP) {
    return GetBitmap(arg, head.argsz);
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (head.flags == VFIO_IOMMU_DIRTY_PAGES_FLAG_START) {
    if (!tracking_) {
      for (auto& [iova, m] : mappings_) {
        m.dirty = DirtyBitmap(PagesOf(m.bytes));
        Repopulate(m);
      }
      tracking_ = true;
    }
    return 0;
  }
  if (tracking_) {
    for (auto& [iova, m] : mappings_) m.dirty = DirtyBitmap();
    tracking_ = false;
  }
  return 0;
}

Result<int> EmulatedType1Container::GetBitmap(void* arg, uint32_t argsz) {
  constexpr uint32_t kHead = sizeof(vfio_iommu_type1_dirty_bitmap);
  if (argsz < kHead + sizeof(vfio_iommu_type1_dirty_bitmap_get)) {
    return Err(EINVAL, "GET_BITMAP: argsz below 8 + 40");
  }
  vfio_iommu_type1_dirty_bitmap_get range;
  std::memcpy(&range, static_cast<char*>(arg) + kHead, sizeof(range));
  if (range.iova + range.size < range.iova) {
    return Err(EINVAL, "GET_BITMAP: iova + size overflows");
  }
  if (range.bitmap.data == nullptr) {
    return Err(EINVAL, "GET_BITMAP: null bitmap");
  }
  const uint64_t pg = options_.min_page_bytes;
  if (range.bitmap.pgsize != pg) {
    return Err(EINVAL, "GET_BITMAP: pgsize " +
                           std::to_string(range.bitmap.pgsize) +
                           " is not the IOMMU page size " + std::to_string(pg));
  }
  const uint64_t npages = range.size / pg;
  const uint64_t needed_bytes = (npages + 63) / 64 * 8;
  if (npages == 0 || range.bitmap.size == 0 ||
      range.bitmap.size > options_.max_dirty_bitmap_bytes ||
      range.bitmap.size < needed_bytes) {
    return Err(EINVAL, "GET_BITMAP: bitmap size " +
                           std::to_string(range.bitmap.size) +
                           " outside [" + std::to_string(needed_bytes) + ", " +
                           std::to_string(options_.max_dirty_bitmap_bytes) +
                           "]");
  }
  if (!Aligned(range.iova, pg) || !Aligned(range.size, pg)) {
    return Err(EINVAL, "GET_BITMAP: iova/size not aligned to the page size");
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (!tracking_) return Err(EINVAL, "GET_BITMAP: dirty tracking not started");
  const uint64_t end = range.iova + range.size;
  auto it = mappings_.lower_bound(range.iova);
  if (it != mappings_.begin()) {
    auto prev = std::prev(it);
    if (prev->first + prev->second.bytes > range.iova) {
      return Err(EINVAL, "GET_BITMAP: range starts inside a mapping");
    }
  }
  auto last = it;
  for (; last != mappings_.end() && last->first < end; ++last) {
    if (last->first + last->second.bytes > end) {
      return Err(EINVAL, "GET_BITMAP: range ends inside a mapping");
    }
  }
  auto* user = reinterpret_cast<uint64_t*>(range.bitmap.data);
  for (; it != last; ++it) {
    Mapping& m = it->second;
    const uint64_t at = (it->first - range.iova) / pg;
    if (at % 64 == 0) {
      MoveSetWords(m.dirty.words().data(), user + at / 64, m.dirty.num_words());
    } else {
      OrBitRange(m.dirty.words().data(), 0, user, at, m.dirty.num_pages());
      m.dirty.ClearAll();
    }
    Repopulate(m);
  }
  return 0;
}

void EmulatedType1Container::Pin(uint64_t iova, uint64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t pg = options_.min_page_bytes;
  const uint64_t end = iova + bytes;
  for (auto& [start, m] : mappings_) {
    const uint64_t lo = std::max(start, iova);
    const uint64_t hi = std::min(start + m.bytes, end);
    if (lo >= hi) continue;
    if (m.pinned.num_pages() == 0) m.pinned = DirtyBitmap(PagesOf(m.bytes));
    const uint64_t first = (lo - start) / pg;
    const uint64_t count = (hi - start + pg - 1) / pg - first;
    m.pinned.SetRange(first, count);
    if (tracking_) m.dirty.SetRange(first, count);
  }
}

void EmulatedType1Container::RecordDma(uint64_t iova, uint64_t length_bytes) {
  if (length_bytes == 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (!tracking_) return;
  const uint64_t pg = options_.min_page_bytes;
  const uint64_t end = iova + length_bytes;
  auto it = mappings_.upper_bound(iova);
  if (it != mappings_.begin()) --it;
  for (; it != mappings_.end() && it->first < end; ++it) {
    Mapping& m = it->second;
    const uint64_t lo = std::max(it->first, iova);
    const uint64_t hi = std::min(it->first + m.bytes, end);
    if (lo >= hi) continue;
    const uint64_t first = (lo - it->first) / pg;
    m.dirty.SetRange(first, (hi - it->first + pg - 1) / pg - first);
  }
}

}  // namespace converge::sim
