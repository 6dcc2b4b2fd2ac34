#include "sim/emulated_iommufd.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <iterator>
#include <string>

#include "iommu/bit_range.h"
#include "iommu/uapi_compat.h"

namespace converge::sim {
namespace {

Status Err(int e, const std::string& what) {
  return ErrnoStatus(e, "emulated iommufd: " + what);
}

bool Aligned(uint64_t v, uint64_t a) { return (v & (a - 1)) == 0; }

// Reads a command struct the way iommufd does: the leading u32 `size` must
// cover min_size; bytes the emulator does not know must be zero.
template <typename T>
Result<T> ReadCmd(void* arg, uint32_t min_size, const char* name) {
  if (arg == nullptr) return Err(EFAULT, std::string(name) + ": null argument");
  uint32_t size;
  std::memcpy(&size, arg, sizeof size);
  if (size < min_size) {
    return Err(EINVAL, std::string(name) + ": size " + std::to_string(size) +
                           " below " + std::to_string(min_size));
  }
  const auto* bytes = static_cast<const unsigned char*>(arg);
  for (uint32_t i = sizeof(T); i < size; ++i) {
    if (bytes[i] != 0) {
      return Err(E2BIG, std::string(name) + ": non-zero byte " +
                            std::to_string(i) + " past the known struct");
    }
  }
  T cmd{};
  std::memcpy(&cmd, arg, std::min<size_t>(size, sizeof(T)));
  return cmd;
}

template <typename T>
void WriteCmd(void* arg, const T& cmd) {
  std::memcpy(arg, &cmd, std::min<size_t>(cmd.size, sizeof(T)));
}

}  // namespace

EmulatedIommufd::EmulatedIommufd(EmulatedKernel& kernel,
                                 EmulatedIommufdOptions options)
    : kernel_(kernel), options_(options) {
  assert(std::has_single_bit(options_.iova_alignment_bytes) &&
         options_.iova_alignment_bytes >= kIommuPageBytes);
  kernel_.AddDmaObserver(this);
}

EmulatedIommufd::~EmulatedIommufd() { kernel_.RemoveDmaObserver(this); }

void EmulatedIommufd::Register(EmulatedKernel& kernel,
                               EmulatedIommufdOptions options,
                               const std::string& path) {
  kernel.AddPath(path, [&kernel, options] {
    return std::make_shared<EmulatedIommufd>(kernel, options);
  });
}

uint32_t EmulatedIommufd::AddDevice(bool dirty_tracking) {
  std::lock_guard<std::mutex> lock(mu_);
  uint32_t id = next_id_++;
  devices_[id] = dirty_tracking;
  return id;
}

Result<int> EmulatedIommufd::Ioctl(unsigned long request, void* arg) {
  switch (request) {
    case IOMMU_DESTROY: return Destroy(arg);
    case IOMMU_IOAS_ALLOC: return IoasAlloc(arg);
    case IOMMU_IOAS_MAP: return IoasMap(arg);
    case IOMMU_IOAS_UNMAP: return IoasUnmap(arg);
    case IOMMU_GET_HW_INFO: return GetHwInfo(arg);
    case IOMMU_HWPT_ALLOC: return HwptAlloc(arg);
    case IOMMU_HWPT_SET_DIRTY_TRACKING: return SetDirtyTracking(arg);
    case IOMMU_HWPT_GET_DIRTY_BITMAP: return GetDirtyBitmap(arg);
    default: return Err(ENOTTY, "unknown ioctl " + std::to_string(request));
  }
}

Result<int> EmulatedIommufd::Destroy(void* arg) {
  CONVERGE_ASSIGN_OR_RETURN(iommu_destroy cmd,
                            ReadCmd<iommu_destroy>(arg, 8, "DESTROY"));
  std::lock_guard<std::mutex> lock(mu_);
  if (ioas_.count(cmd.id) != 0) {
    for (const auto& [id, hwpt] : hwpts_) {
      if (hwpt.ioas_id == cmd.id) {
        return Err(EBUSY, "DESTROY: IOAS " + std::to_string(cmd.id) +
                              " is used by HWPT " + std::to_string(id));
      }
    }
    ioas_.erase(cmd.id);
    return 0;
  }
  if (hwpts_.erase(cmd.id) != 0) return 0;
  return Err(ENOENT, "DESTROY: no object " + std::to_string(cmd.id));
}

Result<int> EmulatedIommufd::IoasAlloc(void* arg) {
  CONVERGE_ASSIGN_OR_RETURN(iommu_ioas_alloc cmd,
                            ReadCmd<iommu_ioas_alloc>(arg, 12, "IOAS_ALLOC"));
  if (cmd.flags != 0) return Err(EOPNOTSUPP, "IOAS_ALLOC: flags must be 0");
  std::lock_guard<std::mutex> lock(mu_);
  cmd.out_ioas_id = next_id_++;
  ioas_[cmd.out_ioas_id];
  WriteCmd(arg, cmd);
  return 0;
}

Result<int> EmulatedIommufd::IoasMap(void* arg) {
  CONVERGE_ASSIGN_OR_RETURN(iommu_ioas_map cmd,
                            ReadCmd<iommu_ioas_map>(arg, 40, "IOAS_MAP"));
  constexpr uint32_t kMask = IOMMU_IOAS_MAP_FIXED_IOVA |
                             IOMMU_IOAS_MAP_WRITEABLE |
                             IOMMU_IOAS_MAP_READABLE;
  if ((cmd.flags & ~kMask) != 0 || cmd.__reserved != 0) {
    return Err(EOPNOTSUPP, "IOAS_MAP: unknown flags or reserved set");
  }
  if ((cmd.flags & IOMMU_IOAS_MAP_FIXED_IOVA) == 0) {
    return Err(EOPNOTSUPP, "IOAS_MAP: only FIXED_IOVA is emulated");
  }
  const uint64_t align = options_.iova_alignment_bytes;
  if (cmd.length == 0 || !Aligned(cmd.iova, align) ||
      !Aligned(cmd.length, align)) {
    return Err(EINVAL, "IOAS_MAP: length zero or iova/length not aligned");
  }
  if (cmd.iova + cmd.length - 1 < cmd.iova) {
    return Err(EOVERFLOW, "IOAS_MAP: iova + length overflows");
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto ioas = ioas_.find(cmd.ioas_id);
  if (ioas == ioas_.end()) return Err(ENOENT, "IOAS_MAP: no such IOAS");
  auto& areas = ioas->second.areas;
  auto next = areas.lower_bound(cmd.iova);
  bool overlaps = next != areas.end() && next->first < cmd.iova + cmd.length;
  if (next != areas.begin()) {
    auto prev = std::prev(next);
    overlaps |= prev->first + prev->second.length > cmd.iova;
  }
  if (overlaps) return Err(EEXIST, "IOAS_MAP: overlaps an existing area");
  areas[cmd.iova] = Area{cmd.length, cmd.user_va};
  WriteCmd(arg, cmd);
  return 0;
}

Result<int> EmulatedIommufd::IoasUnmap(void* arg) {
  CONVERGE_ASSIGN_OR_RETURN(iommu_ioas_unmap cmd,
                            ReadCmd<iommu_ioas_unmap>(arg, 24, "IOAS_UNMAP"));
  std::lock_guard<std::mutex> lock(mu_);
  auto ioas = ioas_.find(cmd.ioas_id);
  if (ioas == ioas_.end()) return Err(ENOENT, "IOAS_UNMAP: no such IOAS");
  auto& areas = ioas->second.areas;
  const bool all = cmd.iova == 0 && cmd.length == UINT64_MAX;
  const uint64_t end = all ? UINT64_MAX : cmd.iova + cmd.length;
  if (!all && (cmd.length == 0 || end < cmd.iova)) {
    return Err(EINVAL, "IOAS_UNMAP: length zero or overflowing");
  }
  auto first = areas.lower_bound(cmd.iova);
  if (first != areas.begin()) {
    auto prev = std::prev(first);
    if (prev->first + prev->second.length > cmd.iova) {
      return Err(EINVAL, "IOAS_UNMAP: range cuts through an area");
    }
  }
  auto last = first;
  uint64_t unmapped = 0;
  for (; last != areas.end() && last->first < end; ++last) {
    if (!all && last->first + last->second.length > end) {
      return Err(EINVAL, "IOAS_UNMAP: range cuts through an area");
    }
    unmapped += last->second.length;
  }
  if (unmapped == 0) return Err(ENOENT, "IOAS_UNMAP: nothing mapped there");
  for (auto it = first; it != last; ++it) {
    for (auto& [id, hwpt] : hwpts_) {
      if (hwpt.ioas_id == cmd.ioas_id) hwpt.dirty.erase(it->first);
    }
  }
  areas.erase(first, last);
  cmd.length = unmapped;
  WriteCmd(arg, cmd);
  return 0;
}

Result<int> EmulatedIommufd::GetHwInfo(void* arg) {
  CONVERGE_ASSIGN_OR_RETURN(iommu_hw_info cmd,
                            ReadCmd<iommu_hw_info>(arg, 32, "GET_HW_INFO"));
  if (cmd.flags != 0 || cmd.__reserved != 0) {
    return Err(EOPNOTSUPP, "GET_HW_INFO: flags or reserved set");
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto dev = devices_.find(cmd.dev_id);
  if (dev == devices_.end()) {
    return Err(ENOENT, "GET_HW_INFO: no device " + std::to_string(cmd.dev_id));
  }
  cmd.data_len = 0;
  cmd.out_data_type = 0;
  cmd.out_capabilities = dev->second ? IOMMU_HW_CAP_DIRTY_TRACKING : 0;
  WriteCmd(arg, cmd);
  return 0;
}

Result<int> EmulatedIommufd::HwptAlloc(void* arg) {
  CONVERGE_ASSIGN_OR_RETURN(iommu_hwpt_alloc cmd,
                            ReadCmd<iommu_hwpt_alloc>(arg, 24, "HWPT_ALLOC"));
  constexpr uint32_t kNestParent = 1 << 0;
  if ((cmd.flags & ~(kNestParent | IOMMU_HWPT_ALLOC_DIRTY_TRACKING)) != 0 ||
      cmd.__reserved != 0) {
    return Err(EOPNOTSUPP, "HWPT_ALLOC: unknown flags or reserved set");
  }
  if (cmd.data_type != 0 || cmd.data_len != 0) {
    return Err(EINVAL, "HWPT_ALLOC: driver data is not emulated");
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto dev = devices_.find(cmd.dev_id);
  if (dev == devices_.end()) {
    return Err(ENOENT, "HWPT_ALLOC: no device " + std::to_string(cmd.dev_id));
  }
  if (ioas_.count(cmd.pt_id) == 0) {
    return Err(ENOENT, "HWPT_ALLOC: pt_id " + std::to_string(cmd.pt_id) +
                           " is not an IOAS");
  }
  const bool dirty = (cmd.flags & IOMMU_HWPT_ALLOC_DIRTY_TRACKING) != 0;
  if (dirty && !dev->second) {
    return Err(EOPNOTSUPP, "HWPT_ALLOC: the IOMMU cannot track dirty pages");
  }
  cmd.out_hwpt_id = next_id_++;
  Hwpt& hwpt = hwpts_[cmd.out_hwpt_id];
  hwpt.ioas_id = cmd.pt_id;
  hwpt.dirty_capable = dirty;
  WriteCmd(arg, cmd);
  return 0;
}

Result<int> EmulatedIommufd::SetDirtyTracking(void* arg) {
  CONVERGE_ASSIGN_OR_RETURN(
      iommu_hwpt_set_dirty_tracking cmd,
      ReadCmd<iommu_hwpt_set_dirty_tracking>(arg, 16, "SET_DIRTY_TRACKING"));
  if ((cmd.flags & ~uint32_t{IOMMU_HWPT_DIRTY_TRACKING_ENABLE}) != 0 ||
      cmd.__reserved != 0) {
    return Err(EOPNOTSUPP, "SET_DIRTY_TRACKING: unknown flags or reserved");
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto it = hwpts_.find(cmd.hwpt_id);
  if (it == hwpts_.end()) {
    return Err(ENOENT, "SET_DIRTY_TRACKING: no HWPT " +
                           std::to_string(cmd.hwpt_id));
  }
  Hwpt& hwpt = it->second;
  if (!hwpt.dirty_capable) {
    return Err(EOPNOTSUPP, "SET_DIRTY_TRACKING: HWPT allocated without "
                           "DIRTY_TRACKING");
  }
  hwpt.tracking = (cmd.flags & IOMMU_HWPT_DIRTY_TRACKING_ENABLE) != 0;
  if (hwpt.tracking) hwpt.dirty.clear();  // enabling clears every bit
  return 0;
}

Result<int> EmulatedIommufd::GetDirtyBitmap(void* arg) {
  CONVERGE_ASSIGN_OR_RETURN(
      iommu_hwpt_get_dirty_bitmap cmd,
      ReadCmd<iommu_hwpt_get_dirty_bitmap>(arg, 48, "GET_DIRTY_BITMAP"));
  if ((cmd.flags & ~uint32_t{IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR}) != 0 ||
      cmd.__reserved != 0) {
    return Err(EOPNOTSUPP, "GET_DIRTY_BITMAP: unknown flags or reserved");
  }
  uint64_t last_iova;
  if (__builtin_add_overflow(cmd.iova, cmd.length - 1, &last_iova)) {
    return Err(EOVERFLOW, "GET_DIRTY_BITMAP: iova + length overflows");
  }
  if (cmd.length == 0) return Err(EINVAL, "GET_DIRTY_BITMAP: length zero");
  const uint64_t align = options_.iova_alignment_bytes;
  if (!Aligned(cmd.iova, align) || !Aligned(last_iova + 1, align)) {
    return Err(EINVAL, "GET_DIRTY_BITMAP: range not aligned to the IOAS "
                       "alignment " + std::to_string(align));
  }
  const uint64_t ps = cmd.page_size;
  if (ps == 0 || !std::has_single_bit(ps)) {
    return Err(EINVAL, "GET_DIRTY_BITMAP: page_size " + std::to_string(ps) +
                           " is not a power of two");
  }
  if (!Aligned(cmd.iova, ps) || !Aligned(last_iova + 1, ps)) {
    return Err(EINVAL, "GET_DIRTY_BITMAP: range not aligned to page_size");
  }
  if (cmd.data == 0) return Err(EFAULT, "GET_DIRTY_BITMAP: null bitmap");
  auto* user = reinterpret_cast<uint64_t*>(cmd.data);
  const bool clear = (cmd.flags & IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR) == 0;
  const uint64_t end = last_iova + 1;

  std::lock_guard<std::mutex> lock(mu_);
  auto it = hwpts_.find(cmd.hwpt_id);
  if (it == hwpts_.end()) {
    return Err(ENOENT, "GET_DIRTY_BITMAP: no HWPT " +
                           std::to_string(cmd.hwpt_id));
  }
  Hwpt& hwpt = it->second;
  if (!hwpt.dirty_capable) {
    return Err(EOPNOTSUPP, "GET_DIRTY_BITMAP: HWPT without DIRTY_TRACKING");
  }
  auto area = hwpt.dirty.upper_bound(cmd.iova);
  if (area != hwpt.dirty.begin()) --area;
  for (; area != hwpt.dirty.end() && area->first < end; ++area) {
    DirtyBitmap& db = area->second;
    const uint64_t a = area->first;
    const uint64_t lo = std::max<uint64_t>(a, cmd.iova);
    const uint64_t hi = std::min<uint64_t>(a + db.num_pages() * kIommuPageBytes, end);
    if (lo >= hi) continue;
    const uint64_t first = (lo - a) / kIommuPageBytes;
    const uint64_t count = (hi - lo) / kIommuPageBytes;
    const uint64_t at = (lo - cmd.iova) / ps;
    if (ps == kIommuPageBytes && clear && first % 64 == 0 && at % 64 == 0 &&
        (count % 64 == 0 || first + count == db.num_pages())) {
      // Whole words (the last one's bits past the area are zero).
      MoveSetWords(db.words().data() + first / 64, user + at / 64,
                   (count + 63) / 64);
      continue;
    }
    if (ps == kIommuPageBytes) {
      OrBitRange(db.words().data(), first, user, at, count);
    } else {
      // Any dirty 4 KiB page dirties every page_size unit it touches.
      const uint64_t* w = db.words().data();
      for (uint64_t p = first; p < first + count;) {
        uint64_t word = w[p / 64] >> (p % 64);
        if (word == 0) {
          p = (p / 64 + 1) * 64;
          continue;
        }
        p += static_cast<uint64_t>(std::countr_zero(word));
        if (p >= first + count) break;
        const uint64_t addr = a + p * kIommuPageBytes - cmd.iova;
        const uint64_t b_last = (addr + kIommuPageBytes - 1) / ps;
        for (uint64_t b = addr / ps; b <= b_last; ++b) {
          user[b / 64] |= uint64_t{1} << (b % 64);
        }
        ++p;
      }
    }
    if (clear) db.ClearRange(first, count);
  }
  return 0;
}

void EmulatedIommufd::RecordDma(uint64_t iova, uint64_t length_bytes) {
  if (length_bytes == 0) return;
  const uint64_t end = iova + length_bytes;
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [id, hwpt] : hwpts_) {
    if (!hwpt.tracking) continue;
    const auto& areas = ioas_[hwpt.ioas_id].areas;
    auto it = areas.upper_bound(iova);
    if (it != areas.begin()) --it;
    for (; it != areas.end() && it->first < end; ++it) {
      const uint64_t a = it->first;
      const uint64_t lo = std::max(a, iova);
      const uint64_t hi = std::min(a + it->second.length, end);
      if (lo >= hi) continue;
      DirtyBitmap& db = hwpt.dirty[a];
      if (db.num_pages() == 0) {
        db = DirtyBitmap(it->second.length / kIommuPageBytes);
      }
      const uint64_t first = (lo - a) / kIommuPageBytes;
      db.SetRange(first,
                  (hi - a + kIommuPageBytes - 1) / kIommuPageBytes - first);
    }
  }
}

}  // namespace converge::sim
