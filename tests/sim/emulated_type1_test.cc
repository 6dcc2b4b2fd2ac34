#include "sim/emulated_type1.h"

#include <fcntl.h>

#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "iommu/uapi_compat.h"

namespace converge::sim {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;

class EmulatedType1Test : public ::testing::Test {
 protected:
  void Init(EmulatedType1Options options = {}) {
    EmulatedType1Container::Register(kernel_, options);
    auto fd = kernel_.Open("/dev/vfio/vfio", O_RDWR);
    ASSERT_TRUE(fd.ok()) << fd.status().ToString();
    fd_ = *fd;
    ASSERT_TRUE(kernel_.Ioctl(fd_, VFIO_SET_IOMMU,
                              reinterpret_cast<void*>(VFIO_TYPE1v2_IOMMU))
                    .ok());
    container_ = kernel_.LookupAs<EmulatedType1Container>(fd_);
    ASSERT_NE(container_, nullptr);
  }
  Status Map(uint64_t iova, uint64_t size) {
    vfio_iommu_type1_dma_map map{};
    map.argsz = sizeof map;
    map.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
    map.vaddr = 0x7f0000000000 + iova;
    map.iova = iova;
    map.size = size;
    return kernel_.Ioctl(fd_, VFIO_IOMMU_MAP_DMA, &map).status();
  }
  Status Dirty(uint32_t flags, uint32_t argsz = 8) {
    vfio_iommu_type1_dirty_bitmap d{};
    d.argsz = argsz;
    d.flags = flags;
    return kernel_.Ioctl(fd_, VFIO_IOMMU_DIRTY_PAGES, &d).status();
  }
  struct Get {
    uint32_t argsz = 48;
    uint64_t iova = 0, size = 0, pgsize = 4096, bitmap_bytes = 0;
    bool null_data = false;
  };
  Status GetBitmap(const Get& g, std::vector<uint64_t>& words) {
    if (words.size() * 8 < g.bitmap_bytes) words.resize(g.bitmap_bytes / 8 + 1);
    alignas(8) unsigned char buf[64] = {};
    vfio_iommu_type1_dirty_bitmap head{};
    head.argsz = g.argsz;
    head.flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;
    vfio_iommu_type1_dirty_bitmap_get get{};
    get.iova = g.iova;
    get.size = g.size;
    get.bitmap.pgsize = g.pgsize;
    get.bitmap.size = g.bitmap_bytes;
    get.bitmap.data =
        g.null_data ? nullptr : reinterpret_cast<__u64*>(words.data());
    std::memcpy(buf, &head, 8);
    std::memcpy(buf + 8, &get, sizeof get);
    return kernel_.Ioctl(fd_, VFIO_IOMMU_DIRTY_PAGES, buf).status();
  }

  EmulatedKernel kernel_;
  int fd_ = -1;
  std::shared_ptr<EmulatedType1Container> container_;
};

TEST_F(EmulatedType1Test, ApiVersionAndExtension) {
  Init();
  EXPECT_EQ(*kernel_.Ioctl(fd_, VFIO_GET_API_VERSION, nullptr), VFIO_API_VERSION);
  EXPECT_EQ(*kernel_.Ioctl(fd_, VFIO_CHECK_EXTENSION,
                           reinterpret_cast<void*>(VFIO_TYPE1v2_IOMMU)),
            1);
  EXPECT_EQ(*kernel_.Ioctl(fd_, VFIO_CHECK_EXTENSION,
                           reinterpret_cast<void*>(VFIO_SPAPR_TCE_IOMMU)),
            0);
  EXPECT_EQ(kernel_.Ioctl(fd_, VFIO_SET_IOMMU,
                          reinterpret_cast<void*>(VFIO_TYPE1v2_IOMMU))
                .status()
                .sys_errno(),
            EBUSY);
}

TEST_F(EmulatedType1Test, GetInfoGrowsArgszThenReturnsMigrationCap) {
  Init(EmulatedType1Options{2 * kMiB, 4096, true});
  std::vector<uint64_t> buf(64, 0);
  auto* info = reinterpret_cast<vfio_iommu_type1_info*>(buf.data());
  info->argsz = sizeof(vfio_iommu_type1_info);
  ASSERT_TRUE(kernel_.Ioctl(fd_, VFIO_IOMMU_GET_INFO, info).ok());
  EXPECT_TRUE(info->flags & VFIO_IOMMU_INFO_CAPS);
  const uint32_t needed = info->argsz;
  EXPECT_GT(needed, sizeof(vfio_iommu_type1_info));
  EXPECT_EQ(info->cap_offset, 0u);
  info->argsz = needed;
  ASSERT_TRUE(kernel_.Ioctl(fd_, VFIO_IOMMU_GET_INFO, info).ok());
  ASSERT_NE(info->cap_offset, 0u);
  const char* base = reinterpret_cast<const char*>(buf.data());
  bool found = false;
  for (uint32_t off = info->cap_offset; off != 0;) {
    vfio_info_cap_header hdr;
    std::memcpy(&hdr, base + off, sizeof hdr);
    if (hdr.id == VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION) {
      vfio_iommu_type1_info_cap_migration mig;
      std::memcpy(&mig, base + off, sizeof mig);
      EXPECT_EQ(mig.pgsize_bitmap, 2 * kMiB);
      EXPECT_EQ(mig.max_dirty_bitmap_size, 4096u);
      found = true;
    }
    off = hdr.next;
  }
  EXPECT_TRUE(found);
  info->argsz = 8;
  EXPECT_EQ(kernel_.Ioctl(fd_, VFIO_IOMMU_GET_INFO, info).status().sys_errno(),
            EINVAL);
}

TEST_F(EmulatedType1Test, MapAndUnmapErrors) {
  Init();
  EXPECT_TRUE(Map(0, 16 * kMiB).ok());
  EXPECT_EQ(Map(8 * kMiB, kMiB).sys_errno(), EEXIST);
  EXPECT_EQ(Map(32 * kMiB + 1, kMiB).sys_errno(), EINVAL);
  EXPECT_EQ(Map(32 * kMiB, 0).sys_errno(), EINVAL);
  vfio_iommu_type1_dma_unmap unmap{};
  unmap.argsz = sizeof unmap;
  unmap.iova = 0;
  unmap.size = 8 * kMiB;  // cuts the mapping
  EXPECT_EQ(kernel_.Ioctl(fd_, VFIO_IOMMU_UNMAP_DMA, &unmap).status().sys_errno(),
            EINVAL);
  unmap.size = 16 * kMiB;
  EXPECT_TRUE(kernel_.Ioctl(fd_, VFIO_IOMMU_UNMAP_DMA, &unmap).ok());
  EXPECT_EQ(unmap.size, 16 * kMiB);
  EXPECT_EQ(container_->num_mappings(), 0u);
}

TEST_F(EmulatedType1Test, DirtyPagesFlagChecks) {
  Init();
  ASSERT_TRUE(Map(0, 16 * kMiB).ok());
  EXPECT_EQ(Dirty(0).sys_errno(), EINVAL);  // no flag
  EXPECT_EQ(Dirty(VFIO_IOMMU_DIRTY_PAGES_FLAG_START |
                  VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP)
                .sys_errno(),
            EINVAL);  // two flags
  EXPECT_EQ(Dirty(1u << 5).sys_errno(), EINVAL);  // unknown flag
  EXPECT_EQ(Dirty(VFIO_IOMMU_DIRTY_PAGES_FLAG_START, 4).sys_errno(), EINVAL);
  EXPECT_TRUE(Dirty(VFIO_IOMMU_DIRTY_PAGES_FLAG_START).ok());
  EXPECT_TRUE(container_->tracking());
  EXPECT_TRUE(Dirty(VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP).ok());
  EXPECT_FALSE(container_->tracking());
}

struct BadGet {
  const char* what;
  uint32_t argsz;
  uint64_t iova, size, pgsize, bitmap_bytes;
  bool null_data;
};

TEST_F(EmulatedType1Test, GetBitmapArgumentErrors) {
  Init(EmulatedType1Options{4096, 512, true});
  ASSERT_TRUE(Map(0, 16 * kMiB).ok());
  ASSERT_TRUE(Map(16 * kMiB, 16 * kMiB).ok());
  const uint64_t ok_bytes = 16 * kMiB / 4096 / 8;  // 512
  const BadGet cases[] = {
      {"argsz below 8 + 40", 40, 0, 16 * kMiB, 4096, ok_bytes, false},
      {"pgsize not the IOMMU page", 48, 0, 16 * kMiB, 8192, ok_bytes, false},
      {"iova unaligned", 48, 2048, 16 * kMiB, 4096, ok_bytes, false},
      {"size unaligned", 48, 0, 16 * kMiB + 100, 4096, ok_bytes, false},
      {"size zero", 48, 0, 0, 4096, ok_bytes, false},
      {"bitmap too small", 48, 0, 16 * kMiB, 4096, ok_bytes - 8, false},
      {"bitmap above the max", 48, 0, 32 * kMiB, 4096, 2 * ok_bytes, false},
      {"null bitmap", 48, 0, 16 * kMiB, 4096, ok_bytes, true},
      {"overflow", 48, ~uint64_t{0} - 4095, 16 * kMiB, 4096, ok_bytes, false},
      {"cuts a mapping at the end", 48, 0, 8 * kMiB, 4096, ok_bytes, false},
      {"cuts a mapping at the start", 48, 8 * kMiB, 8 * kMiB, 4096, ok_bytes,
       false},
  };
  ASSERT_TRUE(Dirty(VFIO_IOMMU_DIRTY_PAGES_FLAG_START).ok());
  for (const BadGet& c : cases) {
    std::vector<uint64_t> words(1024, 0);
    Status s = GetBitmap(Get{c.argsz, c.iova, c.size, c.pgsize,
                             c.bitmap_bytes, c.null_data},
                         words);
    EXPECT_EQ(s.sys_errno(), EINVAL) << c.what << ": " << s.ToString();
  }
  std::vector<uint64_t> words(1024, 0);
  EXPECT_TRUE(GetBitmap(Get{48, 0, 16 * kMiB, 4096, ok_bytes, false}, words).ok());
  ASSERT_TRUE(Dirty(VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP).ok());
  EXPECT_EQ(GetBitmap(Get{48, 0, 16 * kMiB, 4096, ok_bytes, false}, words)
                .sys_errno(),
            EINVAL)
      << "GET_BITMAP without START";
}

TEST_F(EmulatedType1Test, DmaIsReportedOnceAndOnlySetsBits) {
  Init();
  ASSERT_TRUE(Map(0, 16 * kMiB).ok());
  kernel_.NotifyDma(0x3000, 0x2000);  // before START: not logged
  ASSERT_TRUE(Dirty(VFIO_IOMMU_DIRTY_PAGES_FLAG_START).ok());
  kernel_.NotifyDma(0x5000, 1);
  kernel_.NotifyDma(64 * kMiB, 4096);  // unmapped: ignored
  std::vector<uint64_t> words(64, 0);
  words[1] = 1;  // a bit already set stays set
  ASSERT_TRUE(GetBitmap(Get{48, 0, 16 * kMiB, 4096, 512, false}, words).ok());
  EXPECT_EQ(words[0], uint64_t{1} << 5);
  EXPECT_EQ(words[1], 1u);
  std::vector<uint64_t> again(64, 0);
  ASSERT_TRUE(GetBitmap(Get{48, 0, 16 * kMiB, 4096, 512, false}, again).ok());
  EXPECT_EQ(again, std::vector<uint64_t>(64, 0)) << "reads clear";
}

TEST_F(EmulatedType1Test, PinnedPagesStayDirtyAndUnpinnedGroupIsAllDirty) {
  Init();
  ASSERT_TRUE(Map(0, kMiB).ok());
  container_->Pin(0x2000, 0x1000);
  ASSERT_TRUE(Dirty(VFIO_IOMMU_DIRTY_PAGES_FLAG_START).ok());
  for (int round = 0; round < 3; ++round) {
    std::vector<uint64_t> words(4, 0);
    ASSERT_TRUE(GetBitmap(Get{48, 0, kMiB, 4096, 32, false}, words).ok());
    EXPECT_EQ(words[0], uint64_t{1} << 2) << "round " << round;
  }

  EmulatedKernel other;
  EmulatedType1Container all(other, EmulatedType1Options{4096, 1 << 20, false});
  int fd = other.Install(std::shared_ptr<EmulatedObject>(
      &all, [](EmulatedObject*) {}));
  ASSERT_TRUE(other.Ioctl(fd, VFIO_SET_IOMMU,
                          reinterpret_cast<void*>(VFIO_TYPE1v2_IOMMU)).ok());
  vfio_iommu_type1_dma_map map{sizeof map, 3, 0, 0, kMiB};
  ASSERT_TRUE(other.Ioctl(fd, VFIO_IOMMU_MAP_DMA, &map).ok());
  vfio_iommu_type1_dirty_bitmap start{};
  start.argsz = 8;
  start.flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_START;
  ASSERT_TRUE(other.Ioctl(fd, VFIO_IOMMU_DIRTY_PAGES, &start).ok());
  for (int round = 0; round < 2; ++round) {
    std::vector<uint64_t> words(4, 0);
    alignas(8) unsigned char buf[48] = {};
    vfio_iommu_type1_dirty_bitmap head{};
    head.argsz = 48;
    head.flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;
    vfio_iommu_type1_dirty_bitmap_get get{};
    get.size = kMiB;
    get.bitmap.pgsize = 4096;
    get.bitmap.size = 32;
    get.bitmap.data = reinterpret_cast<__u64*>(words.data());
    std::memcpy(buf, &head, 8);
    std::memcpy(buf + 8, &get, sizeof get);
    ASSERT_TRUE(other.Ioctl(fd, VFIO_IOMMU_DIRTY_PAGES, buf).ok());
    EXPECT_EQ(words, std::vector<uint64_t>(4, ~uint64_t{0}))
        << "every mapped page, every time";
  }
}

TEST_F(EmulatedType1Test, HugeIommuPageReportsWholePages) {
  Init(EmulatedType1Options{2 * kMiB, 1 << 20, true});
  ASSERT_TRUE(Map(0, 8 * kMiB).ok());
  ASSERT_TRUE(Dirty(VFIO_IOMMU_DIRTY_PAGES_FLAG_START).ok());
  kernel_.NotifyDma(2 * kMiB + 4096, 8);
  std::vector<uint64_t> words(1, 0);
  ASSERT_TRUE(GetBitmap(Get{48, 0, 8 * kMiB, 2 * kMiB, 8, false}, words).ok());
  EXPECT_EQ(words[0], 0b10u);
}

}  // namespace
}  // namespace converge::sim
