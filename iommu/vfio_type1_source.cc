#include "iommu/vfio_type1_source.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "iommu/uapi_compat.h"

namespace converge {

VfioType1Source::VfioType1Source(Kernel& kernel, int container_fd,
                                 Options options)
    : IovaDirtySource(std::move(options.iova_table)),
      kernel_(kernel),
      fd_(container_fd) {
  SetMappings(std::move(options.mappings));
}

void VfioType1Source::SetMappings(std::vector<IovaSpan> mappings) {
  std::sort(mappings.begin(), mappings.end(),
            [](const IovaSpan& a, const IovaSpan& b) { return a.iova < b.iova; });
  mappings_ = std::move(mappings);
}

Result<Type1MigrationInfo> VfioType1Source::ReadMigrationInfo(
    Kernel& kernel, int container_fd) {
  // Ask with the bare struct; the kernel answers with the argsz it needs
  // for the capability chain, and we ask again with that much.
  std::vector<uint64_t> buf;
  uint32_t argsz = sizeof(vfio_iommu_type1_info);
  for (int attempt = 0; attempt < 2; ++attempt) {
    buf.assign((argsz + 7) / 8, 0);
    auto* info = reinterpret_cast<vfio_iommu_type1_info*>(buf.data());
    info->argsz = argsz;
    CONVERGE_RETURN_IF_ERROR(
        kernel.Ioctl(container_fd, VFIO_IOMMU_GET_INFO, info));
    if ((info->flags & VFIO_IOMMU_INFO_CAPS) == 0) break;
    if (info->argsz > argsz) {
      argsz = info->argsz;
      continue;
    }
    const auto* base = reinterpret_cast<const char*>(buf.data());
    for (uint32_t off = info->cap_offset; off != 0;) {
      if (off + sizeof(vfio_info_cap_header) > argsz) {
        return CorruptError("VFIO_IOMMU_GET_INFO: capability at offset " +
                            std::to_string(off) + " past argsz " +
                            std::to_string(argsz));
      }
      vfio_info_cap_header hdr;
      std::memcpy(&hdr, base + off, sizeof hdr);
      if (hdr.id == VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION) {
        if (off + sizeof(vfio_iommu_type1_info_cap_migration) > argsz) {
          return CorruptError("VFIO_IOMMU_GET_INFO: truncated migration "
                              "capability");
        }
        vfio_iommu_type1_info_cap_migration mig;
        std::memcpy(&mig, base + off, sizeof mig);
        if (mig.pgsize_bitmap == 0 || mig.max_dirty_bitmap_size < 8) {
          return CorruptError("VFIO_IOMMU_GET_INFO: migration capability "
                              "with no page size or bitmap size");
        }
        return Type1MigrationInfo{mig.pgsize_bitmap, mig.max_dirty_bitmap_size};
      }
      if (hdr.next != 0 && hdr.next <= off) {
        return CorruptError("VFIO_IOMMU_GET_INFO: capability chain loops");
      }
      off = hdr.next;
    }
    break;
  }
  return NotSupportedError("VFIO_IOMMU_GET_INFO: no migration capability "
                           "(the IOMMU does not track dirty pages)");
}

Status VfioType1Source::DirtyPages(uint32_t flag) {
  vfio_iommu_type1_dirty_bitmap cmd{};
  cmd.argsz = sizeof cmd;
  cmd.flags = flag;
  return kernel_.Ioctl(fd_, VFIO_IOMMU_DIRTY_PAGES, &cmd).status();
}

Status VfioType1Source::StartTracking(std::span<const IovaSpan> spans) {
  CONVERGE_ASSIGN_OR_RETURN(Type1MigrationInfo info,
                            ReadMigrationInfo(kernel_, fd_));
  const uint64_t page = info.page_bytes();
  if (page < 4096) {
    return CorruptError("VFIO type1: IOMMU page size " + std::to_string(page) +
                        " below 4096");
  }
  for (const IovaSpan& s : spans) {
    if (s.iova % page != 0 || s.bytes % page != 0) {
      return InvalidArgumentError(
          "VFIO type1: tracked range is not aligned to the IOMMU page size " +
          std::to_string(page));
    }
  }
  const uint64_t max_bits = (info.max_dirty_bitmap_bytes / 8) * 64;
  const uint64_t max_bytes =
      max_bits > UINT64_MAX / page ? UINT64_MAX : max_bits * page;
  SetGeometry(page, page, max_bytes);
  return DirtyPages(VFIO_IOMMU_DIRTY_PAGES_FLAG_START);
}

Status VfioType1Source::StopTracking() {
  return DirtyPages(VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP);
}

const IovaSpan* VfioType1Source::MappingAt(uint64_t iova) const {
  auto it = std::upper_bound(
      mappings_.begin(), mappings_.end(), iova,
      [](uint64_t v, const IovaSpan& m) { return v < m.iova; });
  if (it == mappings_.begin()) return nullptr;
  --it;
  return iova < it->end() ? &*it : nullptr;
}

Status VfioType1Source::PlanCalls(uint64_t lo, uint64_t hi,
                                  std::vector<IovaSpan>& calls) const {
  // Widen to whole mappings, then cut only between mappings.
  if (const IovaSpan* m = MappingAt(lo)) lo = m->iova;
  if (const IovaSpan* m = MappingAt(hi - 1)) hi = m->end();
  const uint64_t max_bytes = limits().max_pages_per_call == UINT64_MAX
                                 ? UINT64_MAX
                                 : limits().max_pages_per_call *
                                       ram_page_bytes();
  for (uint64_t cur = lo; cur < hi;) {
    uint64_t end = hi - cur > max_bytes ? cur + max_bytes : hi;
    if (end < hi) {
      if (const IovaSpan* m = MappingAt(end); m != nullptr && m->iova != end) {
        if (m->iova <= cur) {
          return ResourceExhaustedError(
              "VFIO type1: the mapping at iova " + std::to_string(m->iova) +
              " needs a bitmap larger than max_dirty_bitmap_size");
        }
        end = m->iova;
      }
    }
    calls.push_back(IovaSpan{cur, end - cur});
    cur = end;
  }
  return OkStatus();
}

Status VfioType1Source::ReadLog(const IovaSpan& span, uint32_t /*read_flags*/,
                                std::span<uint64_t> words) {
  // argsz = 8 + 40: the header and the range, not the bitmap.
  constexpr size_t kHead = sizeof(vfio_iommu_type1_dirty_bitmap);
  constexpr size_t kArgsz = kHead + sizeof(vfio_iommu_type1_dirty_bitmap_get);
  static_assert(kArgsz == 48);
  alignas(8) unsigned char cmd[kArgsz];
  vfio_iommu_type1_dirty_bitmap head{};
  head.argsz = kArgsz;
  head.flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;
  vfio_iommu_type1_dirty_bitmap_get get{};
  get.iova = span.iova;
  get.size = span.bytes;
  get.bitmap.pgsize = log_page_bytes();
  get.bitmap.size = words.size() * sizeof(uint64_t);
  get.bitmap.data = reinterpret_cast<__u64*>(words.data());
  std::memcpy(cmd, &head, kHead);
  std::memcpy(cmd + kHead, &get, sizeof get);
  return kernel_.Ioctl(fd_, VFIO_IOMMU_DIRTY_PAGES, cmd).status();
}

}  // namespace converge
