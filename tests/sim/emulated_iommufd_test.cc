#include "sim/emulated_iommufd.h"

#include <fcntl.h>

#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "iommu/uapi_compat.h"

namespace converge::sim {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;

class EmulatedIommufdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    EmulatedIommufd::Register(kernel_, EmulatedIommufdOptions{8192});
    auto fd = kernel_.Open("/dev/iommu", O_RDWR);
    ASSERT_TRUE(fd.ok());
    fd_ = *fd;
    iommufd_ = kernel_.LookupAs<EmulatedIommufd>(fd_);
    dev_ = iommufd_->AddDevice(true);
    plain_dev_ = iommufd_->AddDevice(false);
    iommu_ioas_alloc alloc{sizeof alloc, 0, 0};
    ASSERT_TRUE(kernel_.Ioctl(fd_, IOMMU_IOAS_ALLOC, &alloc).ok());
    ioas_ = alloc.out_ioas_id;
    ASSERT_TRUE(Map(0, 16 * kMiB).ok());
    ASSERT_TRUE(Map(32 * kMiB, 16 * kMiB).ok());
    iommu_hwpt_alloc h{};
    h.size = sizeof h;
    h.flags = IOMMU_HWPT_ALLOC_DIRTY_TRACKING;
    h.dev_id = dev_;
    h.pt_id = ioas_;
    ASSERT_TRUE(kernel_.Ioctl(fd_, IOMMU_HWPT_ALLOC, &h).ok());
    hwpt_ = h.out_hwpt_id;
  }
  Status Map(uint64_t iova, uint64_t length) {
    iommu_ioas_map m{};
    m.size = sizeof m;
    m.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE |
              IOMMU_IOAS_MAP_READABLE;
    m.ioas_id = ioas_;
    m.user_va = 0x7f0000000000 + iova;
    m.iova = iova;
    m.length = length;
    return kernel_.Ioctl(fd_, IOMMU_IOAS_MAP, &m).status();
  }
  Status Track(bool on, uint32_t hwpt) {
    iommu_hwpt_set_dirty_tracking t{};
    t.size = sizeof t;
    t.flags = on ? IOMMU_HWPT_DIRTY_TRACKING_ENABLE : 0;
    t.hwpt_id = hwpt;
    return kernel_.Ioctl(fd_, IOMMU_HWPT_SET_DIRTY_TRACKING, &t).status();
  }
  Status Read(uint64_t iova, uint64_t length, uint64_t page_size,
              std::vector<uint64_t>& words, uint32_t flags = 0) {
    iommu_hwpt_get_dirty_bitmap g{};
    g.size = sizeof g;
    g.hwpt_id = hwpt_;
    g.flags = flags;
    g.iova = iova;
    g.length = length;
    g.page_size = page_size;
    g.data = reinterpret_cast<uintptr_t>(words.data());
    return kernel_.Ioctl(fd_, IOMMU_HWPT_GET_DIRTY_BITMAP, &g).status();
  }

  EmulatedKernel kernel_;
  int fd_ = -1;
  std::shared_ptr<EmulatedIommufd> iommufd_;
  uint32_t dev_ = 0, plain_dev_ = 0, ioas_ = 0, hwpt_ = 0;
};

TEST_F(EmulatedIommufdTest, HwInfoAndHwptAllocCapabilities) {
  iommu_hw_info info{};
  info.size = sizeof info;
  info.dev_id = dev_;
  ASSERT_TRUE(kernel_.Ioctl(fd_, IOMMU_GET_HW_INFO, &info).ok());
  EXPECT_EQ(info.out_capabilities & IOMMU_HW_CAP_DIRTY_TRACKING,
            uint64_t{IOMMU_HW_CAP_DIRTY_TRACKING});
  info.dev_id = plain_dev_;
  ASSERT_TRUE(kernel_.Ioctl(fd_, IOMMU_GET_HW_INFO, &info).ok());
  EXPECT_EQ(info.out_capabilities, 0u);
  info.dev_id = 999;
  EXPECT_EQ(kernel_.Ioctl(fd_, IOMMU_GET_HW_INFO, &info).status().sys_errno(),
            ENOENT);

  iommu_hwpt_alloc h{};
  h.size = sizeof h;
  h.flags = IOMMU_HWPT_ALLOC_DIRTY_TRACKING;
  h.dev_id = plain_dev_;
  h.pt_id = ioas_;
  EXPECT_EQ(kernel_.Ioctl(fd_, IOMMU_HWPT_ALLOC, &h).status().sys_errno(),
            EOPNOTSUPP);
  h.flags = 0;
  ASSERT_TRUE(kernel_.Ioctl(fd_, IOMMU_HWPT_ALLOC, &h).ok());
  EXPECT_EQ(Track(true, h.out_hwpt_id).sys_errno(), EOPNOTSUPP);
  h.flags = 1u << 7;
  EXPECT_EQ(kernel_.Ioctl(fd_, IOMMU_HWPT_ALLOC, &h).status().sys_errno(),
            EOPNOTSUPP);
}

TEST_F(EmulatedIommufdTest, SizeFieldChecks) {
  // Below the minimum: EINVAL. Unknown trailing bytes non-zero: E2BIG;
  // zero: accepted.
  std::vector<uint64_t> buf(16, 0);
  auto* t = reinterpret_cast<iommu_hwpt_set_dirty_tracking*>(buf.data());
  t->size = 12;
  t->hwpt_id = hwpt_;
  t->flags = IOMMU_HWPT_DIRTY_TRACKING_ENABLE;
  EXPECT_EQ(kernel_.Ioctl(fd_, IOMMU_HWPT_SET_DIRTY_TRACKING, t)
                .status()
                .sys_errno(),
            EINVAL);
  t->size = 32;
  EXPECT_TRUE(kernel_.Ioctl(fd_, IOMMU_HWPT_SET_DIRTY_TRACKING, t).ok());
  reinterpret_cast<unsigned char*>(buf.data())[20] = 1;
  EXPECT_EQ(kernel_.Ioctl(fd_, IOMMU_HWPT_SET_DIRTY_TRACKING, t)
                .status()
                .sys_errno(),
            E2BIG);
  EXPECT_EQ(kernel_.Ioctl(fd_, _IO(IOMMUFD_TYPE, 0xf0), t).status().sys_errno(),
            ENOTTY);
}

struct BadRead {
  const char* what;
  uint64_t iova, length, page_size;
  uint32_t flags;
  int want;
};

TEST_F(EmulatedIommufdTest, GetDirtyBitmapArgumentErrors) {
  ASSERT_TRUE(Track(true, hwpt_).ok());
  const BadRead cases[] = {
      {"unknown flag", 0, kMiB, 4096, 2, EOPNOTSUPP},
      {"overflow", ~uint64_t{0} - 8191, 2 * 8192, 4096, 0, EOVERFLOW},
      {"iova not IOAS aligned", 4096, kMiB, 4096, 0, EINVAL},
      {"end not IOAS aligned", 0, kMiB + 4096, 4096, 0, EINVAL},
      {"page_size zero", 0, kMiB, 0, 0, EINVAL},
      {"page_size not a power of two", 0, kMiB, 12288, 0, EINVAL},
      {"not aligned to page_size", 0, 3 * 8192 * 64, 2 * kMiB, 0, EINVAL},
  };
  for (const BadRead& c : cases) {
    std::vector<uint64_t> words(1024, 0);
    Status s = Read(c.iova, c.length, c.page_size, words, c.flags);
    EXPECT_EQ(s.sys_errno(), c.want) << c.what << ": " << s.ToString();
  }
  std::vector<uint64_t> words(1024, 0);
  uint32_t saved = hwpt_;
  hwpt_ = 777;
  EXPECT_EQ(Read(0, kMiB, 4096, words).sys_errno(), ENOENT);
  hwpt_ = saved;
}

TEST_F(EmulatedIommufdTest, EnableClearsAndReadClearsUnlessNoClear) {
  ASSERT_TRUE(Track(true, hwpt_).ok());
  kernel_.NotifyDma(0x1000, 1);
  ASSERT_TRUE(Track(true, hwpt_).ok());  // enabling again clears
  kernel_.NotifyDma(33 * kMiB, 1);       // 1 MiB into the second area
  kernel_.NotifyDma(20 * kMiB, 4096);    // a hole: nothing
  std::vector<uint64_t> words(256, 0);
  // Bit index relative to iova: read from 32 MiB.
  ASSERT_TRUE(Read(32 * kMiB, 16 * kMiB, 4096, words,
                   IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR).ok());
  EXPECT_EQ(words[256 / 64], uint64_t{1} << (256 % 64));
  std::vector<uint64_t> all(2048, 0);
  ASSERT_TRUE(Read(0, 48 * kMiB, 4096, all).ok());
  uint64_t set = 0;
  for (uint64_t w : all) set += static_cast<uint64_t>(__builtin_popcountll(w));
  EXPECT_EQ(set, 1u);
  EXPECT_TRUE(all[(33 * kMiB / 4096) / 64] != 0);
  std::fill(all.begin(), all.end(), 0);
  ASSERT_TRUE(Read(0, 48 * kMiB, 4096, all).ok());
  EXPECT_EQ(all, std::vector<uint64_t>(2048, 0)) << "the read cleared";
}

TEST_F(EmulatedIommufdTest, CoarsePageSizeAndDestroy) {
  ASSERT_TRUE(Track(true, hwpt_).ok());
  kernel_.NotifyDma(2 * kMiB + 4096, 4096);
  std::vector<uint64_t> words(1, 0);
  ASSERT_TRUE(Read(0, 16 * kMiB, 2 * kMiB, words).ok());
  EXPECT_EQ(words[0], 0b10u);
  iommu_destroy d{sizeof d, ioas_};
  EXPECT_EQ(kernel_.Ioctl(fd_, IOMMU_DESTROY, &d).status().sys_errno(), EBUSY);
  d.id = hwpt_;
  EXPECT_TRUE(kernel_.Ioctl(fd_, IOMMU_DESTROY, &d).ok());
  d.id = ioas_;
  EXPECT_TRUE(kernel_.Ioctl(fd_, IOMMU_DESTROY, &d).ok());
  EXPECT_EQ(kernel_.Ioctl(fd_, IOMMU_DESTROY, &d).status().sys_errno(), ENOENT);
}

TEST_F(EmulatedIommufdTest, MapErrors) {
  EXPECT_EQ(Map(8 * kMiB, kMiB).sys_errno(), EEXIST);
  EXPECT_EQ(Map(64 * kMiB + 4096, 8192).sys_errno(), EINVAL);
  iommu_ioas_unmap u{sizeof u, ioas_, 0, 8 * kMiB};
  EXPECT_EQ(kernel_.Ioctl(fd_, IOMMU_IOAS_UNMAP, &u).status().sys_errno(),
            EINVAL);
  u.length = 16 * kMiB;
  EXPECT_TRUE(kernel_.Ioctl(fd_, IOMMU_IOAS_UNMAP, &u).ok());
  EXPECT_EQ(u.length, 16 * kMiB);
}

}  // namespace
}  // namespace converge::sim
