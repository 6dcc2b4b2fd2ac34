#include <linux/vfio.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "iommu/uapi_compat.h"
#include "sim/emulated_kernel.h"
#include "sim/vfio_device.h"

namespace converge::sim {
namespace {

constexpr uint64_t k4K = 4096;

Result<int> Feature(Kernel& kernel, int fd, uint32_t flags, void* payload,
                    uint32_t payload_bytes,
                    std::optional<uint32_t> argsz = std::nullopt) {
  std::vector<uint64_t> buf(1 + (payload_bytes + 7) / 8);
  auto* f = reinterpret_cast<vfio_device_feature*>(buf.data());
  f->argsz = argsz.value_or(8 + payload_bytes);
  f->flags = flags;
  if (payload_bytes) std::memcpy(f->data, payload, payload_bytes);
  Result<int> r = kernel.Ioctl(fd, VFIO_DEVICE_FEATURE, f);
  if (payload_bytes) std::memcpy(payload, f->data, payload_bytes);
  return r;
}

struct Rig {
  Rig() : Rig(VfioDeviceOptions{}) {}
  explicit Rig(VfioDeviceOptions o) {
    device = EmulatedVfioDevice::Create(kernel, std::move(o));
    fd = kernel.Install(device);
  }
  // START over ranges; returns the page size written back.
  Result<uint64_t> Start(
      uint64_t page_size,
      const std::vector<vfio_device_feature_dma_logging_range>& ranges,
      std::optional<uint32_t> num_ranges = std::nullopt,
      uint32_t op = VFIO_DEVICE_FEATURE_SET,
      std::optional<uint32_t> argsz = std::nullopt) {
    vfio_device_feature_dma_logging_control c{};
    c.page_size = page_size;
    c.num_ranges = num_ranges.value_or(static_cast<uint32_t>(ranges.size()));
    c.ranges = reinterpret_cast<uintptr_t>(ranges.data());
    CONVERGE_RETURN_IF_ERROR(Feature(
        kernel, fd, op | VFIO_DEVICE_FEATURE_DMA_LOGGING_START, &c, sizeof c,
        argsz));
    return static_cast<uint64_t>(c.page_size);
  }
  Status Stop() {
    return Feature(kernel, fd,
                   VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP,
                   nullptr, 0)
        .status();
  }
  Status Report(uint64_t iova, uint64_t length, uint64_t page_size,
                std::vector<uint64_t>& bitmap) {
    vfio_device_feature_dma_logging_report r{};
    r.iova = iova;
    r.length = length;
    r.page_size = page_size;
    r.bitmap = reinterpret_cast<uintptr_t>(bitmap.data());
    return Feature(kernel, fd,
                   VFIO_DEVICE_FEATURE_GET |
                       VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT,
                   &r, sizeof r)
        .status();
  }
  EmulatedKernel kernel;
  std::shared_ptr<EmulatedVfioDevice> device;
  int fd;
};

std::vector<uint64_t> SetBits(const std::vector<uint64_t>& bitmap) {
  std::vector<uint64_t> out;
  for (size_t w = 0; w < bitmap.size(); ++w) {
    for (int b = 0; b < 64; ++b) {
      if (bitmap[w] >> b & 1) out.push_back(w * 64 + b);
    }
  }
  return out;
}

TEST(VfioDmaLoggingTest, StartArgumentErrors) {
  using R = vfio_device_feature_dma_logging_range;
  std::vector<R> too_many(257);
  for (size_t i = 0; i < too_many.size(); ++i) too_many[i] = {i * k4K, k4K};
  std::vector<R> max(256);
  for (size_t i = 0; i < max.size(); ++i) max[i] = {i * k4K, k4K};
  struct Case {
    const char* name;
    uint64_t page_size;
    std::vector<R> ranges;
    std::optional<uint32_t> num_ranges;
    int want;  // errno, 0 for success
  };
  const Case cases[] = {
      {"no ranges", k4K, {}, 0u, EINVAL},
      {"257 ranges", k4K, too_many, std::nullopt, E2BIG},
      {"256 ranges", k4K, max, std::nullopt, 0},
      {"unaligned iova", k4K, {{0x1800, k4K}}, std::nullopt, EINVAL},
      {"unaligned length", k4K, {{0, 0x1800}}, std::nullopt, EINVAL},
      {"empty range", k4K, {{0, 0}}, std::nullopt, EINVAL},
      {"overlap", k4K, {{0, 4 * k4K}, {2 * k4K, 4 * k4K}}, std::nullopt,
       EINVAL},
      {"overlap out of order", k4K, {{8 * k4K, k4K}, {0, 9 * k4K}},
       std::nullopt, EINVAL},
      {"overflow", k4K, {{~uint64_t{0} - k4K + 1, 2 * k4K}}, std::nullopt,
       EOVERFLOW},
      {"page size zero", 0, {{0, k4K}}, std::nullopt, EINVAL},
      {"page size not a power of two", 3 * k4K, {{0, 3 * k4K}}, std::nullopt,
       EINVAL},
      {"adjacent ranges", k4K, {{0, k4K}, {k4K, k4K}}, std::nullopt, 0},
  };
  for (const Case& c : cases) {
    Rig rig;
    Result<uint64_t> r = rig.Start(c.page_size, c.ranges, c.num_ranges);
    if (c.want == 0) {
      EXPECT_TRUE(r.ok()) << c.name << ": " << r.status().ToString();
      EXPECT_TRUE(rig.device->dma_logging_active()) << c.name;
    } else {
      ASSERT_FALSE(r.ok()) << c.name;
      EXPECT_EQ(r.status().sys_errno(), c.want) << c.name;
      EXPECT_FALSE(rig.device->dma_logging_active()) << c.name;
    }
  }
}

TEST(VfioDmaLoggingTest, StartFeatureChecks) {
  Rig rig;
  std::vector<vfio_device_feature_dma_logging_range> one = {{0, k4K}};
  Result<uint64_t> r = rig.Start(k4K, one, std::nullopt, VFIO_DEVICE_FEATURE_GET);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().sys_errno(), EINVAL);
  r = rig.Start(k4K, one, std::nullopt, VFIO_DEVICE_FEATURE_SET, 8 + 16);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().sys_errno(), EINVAL);
  Result<int> probe = Feature(
      rig.kernel, rig.fd,
      VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET |
          VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
      nullptr, 0);
  EXPECT_TRUE(probe.ok());
}

TEST(VfioDmaLoggingTest, PageSizeHintIsRoundedAndWrittenBack) {
  struct Case {
    uint64_t hint, want;
  };
  const Case cases[] = {
      {k4K, k4K}, {8192, 2u << 20}, {2u << 20, 2u << 20},
      {4ull << 30, 1ull << 30}};
  for (const Case& c : cases) {
    Rig rig;
    Result<uint64_t> r = rig.Start(c.hint, {{0, 8ull << 30}});
    ASSERT_TRUE(r.ok()) << c.hint << ": " << r.status().ToString();
    EXPECT_EQ(*r, c.want) << c.hint;
    EXPECT_EQ(rig.device->dma_log_page_size(), c.want);
  }
}

TEST(VfioDmaLoggingTest, SecondStartBeforeStopIsEinval) {
  Rig rig;
  ASSERT_TRUE(rig.Start(k4K, {{0, 16 * k4K}}).ok());
  Result<uint64_t> again = rig.Start(k4K, {{1 << 20, 16 * k4K}});
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().sys_errno(), EINVAL);
  ASSERT_TRUE(rig.Stop().ok());
  EXPECT_TRUE(rig.Start(k4K, {{1 << 20, 16 * k4K}}).ok());
  ASSERT_TRUE(rig.Stop().ok());
  EXPECT_TRUE(rig.Stop().ok());  // stopping a stopped log succeeds
}

TEST(VfioDmaLoggingTest, ReportArgumentErrors) {
  Rig rig;
  std::vector<uint64_t> bitmap(64);
  Status s = rig.Report(0, 16 * k4K, k4K, bitmap);
  EXPECT_EQ(s.sys_errno(), EINVAL) << "not started";
  ASSERT_TRUE(rig.Start(k4K, {{0, 64 * k4K}, {1ull << 30, 64 * k4K}}).ok());
  struct Case {
    const char* name;
    uint64_t iova, length, page_size;
    int want;
  };
  const Case cases[] = {
      {"page size 2K", 0, 16 * k4K, 2048, EINVAL},
      {"page size 12K", 0, 12 * k4K, 3 * k4K, EINVAL},
      {"page size 0", 0, 16 * k4K, 0, EINVAL},
      {"outside ranges", 64 * k4K, k4K, k4K, EINVAL},
      {"straddles a range end", 60 * k4K, 8 * k4K, k4K, EINVAL},
      {"between two ranges", 0, (1ull << 30) + k4K, k4K, EINVAL},
      {"overflow", ~uint64_t{0} - k4K + 1, 2 * k4K, k4K, EOVERFLOW},
      {"unaligned", 0x800, k4K, k4K, EINVAL},
      {"empty", 0, 0, k4K, EINVAL},
      {"inside", 0, 64 * k4K, k4K, 0},
      {"second range", 1ull << 30, 64 * k4K, k4K, 0},
  };
  for (const Case& c : cases) {
    Status r = rig.Report(c.iova, c.length, c.page_size, bitmap);
    if (c.want == 0) {
      EXPECT_TRUE(r.ok()) << c.name << ": " << r.ToString();
    } else {
      EXPECT_EQ(r.sys_errno(), c.want) << c.name << ": " << r.ToString();
    }
  }
}

TEST(VfioDmaLoggingTest, ReportReadsAndClearsAndOnlySetsBits) {
  Rig rig;
  ASSERT_TRUE(rig.Start(k4K, {{0, 256 * k4K}}).ok());
  ASSERT_TRUE(rig.device->Dma(3 * k4K, k4K).ok());
  ASSERT_TRUE(rig.device->Dma(10 * k4K + 100, 2 * k4K).ok());  // pages 10-12
  ASSERT_TRUE(rig.device->Dma(300 * k4K, k4K).ok());  // outside: not logged
  EXPECT_EQ(rig.device->dma_log_dirty_pages(), 4u);

  std::vector<uint64_t> bitmap(4, 0);
  bitmap[3] = 1ull << 63;  // the caller's bit stays set
  ASSERT_TRUE(rig.Report(0, 256 * k4K, k4K, bitmap).ok());
  EXPECT_EQ(SetBits(bitmap), (std::vector<uint64_t>{3, 10, 11, 12, 255}));
  EXPECT_EQ(rig.device->dma_log_dirty_pages(), 0u);

  std::vector<uint64_t> again(4, 0);
  ASSERT_TRUE(rig.Report(0, 256 * k4K, k4K, again).ok());
  EXPECT_TRUE(SetBits(again).empty()) << "REPORT must clear";
}

TEST(VfioDmaLoggingTest, ReportAtLargerPageSizeAndSubranges) {
  Rig rig;
  ASSERT_TRUE(rig.Start(k4K, {{0, 1024 * k4K}}).ok());
  ASSERT_TRUE(rig.device->Dma(5 * k4K, k4K).ok());
  ASSERT_TRUE(rig.device->Dma(600 * k4K, k4K).ok());
  // Bits of 8 pages (32K) relative to iova 512 pages in.
  std::vector<uint64_t> bitmap(1, 0);
  ASSERT_TRUE(rig.Report(512 * k4K, 512 * k4K, 8 * k4K, bitmap).ok());
  EXPECT_EQ(SetBits(bitmap), (std::vector<uint64_t>{(600 - 512) / 8}));
  EXPECT_EQ(rig.device->dma_log_dirty_pages(), 1u) << "page 5 not reported";
  std::vector<uint64_t> low(1, 0);
  ASSERT_TRUE(rig.Report(0, 512 * k4K, 8 * k4K, low).ok());
  EXPECT_EQ(SetBits(low), (std::vector<uint64_t>{0}));
}

TEST(VfioDmaLoggingTest, DmaReachesIommuObserversAndNeedsARunningDevice) {
  struct Observer : DmaObserver {
    void RecordDma(uint64_t iova, uint64_t length) override {
      seen.emplace_back(iova, length);
    }
    std::vector<std::pair<uint64_t, uint64_t>> seen;
  } observer;
  Rig rig;
  rig.kernel.AddDmaObserver(&observer);
  ASSERT_TRUE(rig.device->Dma(0x10000, 0x3000).ok());  // no log started
  ASSERT_EQ(observer.seen.size(), 1u);
  EXPECT_EQ(observer.seen[0], std::make_pair(uint64_t{0x10000},
                                             uint64_t{0x3000}));
  vfio_device_feature_mig_state mig{
      static_cast<uint32_t>(MigState::kStop), -1};
  ASSERT_TRUE(Feature(rig.kernel, rig.fd,
                      VFIO_DEVICE_FEATURE_SET |
                          VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
                      &mig, sizeof mig)
                  .ok());
  Status s = rig.device->Dma(0, k4K);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(observer.seen.size(), 1u);
  rig.kernel.RemoveDmaObserver(&observer);
}

TEST(VfioDmaLoggingTest, InjectedReportErrorLosesTheLogUntilRestart) {
  Rig rig;
  ASSERT_TRUE(rig.Start(k4K, {{0, 64 * k4K}}).ok());
  ASSERT_TRUE(rig.device->Dma(k4K, k4K).ok());
  rig.device->InjectDmaLogReportError(EIO);
  std::vector<uint64_t> bitmap(1, 0);
  Status s = rig.Report(0, 64 * k4K, k4K, bitmap);
  EXPECT_EQ(s.sys_errno(), EIO);
  EXPECT_EQ(bitmap[0], 0u);
  ASSERT_TRUE(rig.device->Dma(2 * k4K, k4K).ok());
  s = rig.Report(0, 64 * k4K, k4K, bitmap);
  EXPECT_EQ(s.sys_errno(), EIO) << "tracker stays failed";
  ASSERT_TRUE(rig.Stop().ok());
  ASSERT_TRUE(rig.Start(k4K, {{0, 64 * k4K}}).ok());
  ASSERT_TRUE(rig.device->Dma(7 * k4K, k4K).ok());
  ASSERT_TRUE(rig.Report(0, 64 * k4K, k4K, bitmap).ok());
  EXPECT_EQ(SetBits(bitmap), (std::vector<uint64_t>{7}));
}

TEST(VfioDmaLoggingTest, MissingFeatureIsEnotty) {
  VfioDeviceOptions o;
  o.dma_logging = false;
  Rig rig(o);
  Result<uint64_t> r = rig.Start(k4K, {{0, k4K}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().sys_errno(), ENOTTY);
}

TEST(VfioDmaLoggingTest, ConcurrentDmaAndReportLoseNoBitThread) {
  Rig rig;
  constexpr uint64_t kPages = 4096;
  ASSERT_TRUE(rig.Start(k4K, {{0, kPages * k4K}}).ok());
  const uint32_t seed = std::random_device{}();
  std::set<uint64_t> written;
  std::atomic<bool> done{false};
  std::thread writer([&] {
    std::mt19937_64 rng(seed);
    for (int i = 0; i < 20000; ++i) {
      uint64_t page = rng() % kPages;
      written.insert(page);
      (void)rig.device->Dma(page * k4K, k4K);
    }
    done = true;
  });
  std::vector<uint64_t> total(kPages / 64, 0);
  while (!done.load()) {
    std::vector<uint64_t> bitmap(kPages / 64, 0);
    ASSERT_TRUE(rig.Report(0, kPages * k4K, k4K, bitmap).ok());
    for (size_t w = 0; w < total.size(); ++w) total[w] |= bitmap[w];
  }
  writer.join();
  std::vector<uint64_t> last(kPages / 64, 0);
  ASSERT_TRUE(rig.Report(0, kPages * k4K, k4K, last).ok());
  for (size_t w = 0; w < total.size(); ++w) total[w] |= last[w];
  std::vector<uint64_t> want(written.begin(), written.end());
  EXPECT_EQ(SetBits(total), want) << "seed " << seed;
}

}  // namespace
}  // namespace converge::sim
