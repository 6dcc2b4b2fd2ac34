// BM_TrackerSync: a DirtyTracker Sync of a 1 TiB guest (2^28 RAM pages, a
// 32 MiB bitmap) with three sources (VFIO type1, iommufd, device DMA
// logging) through the emulated kernel, after sparse device DMA.
// BM_TrackerKernelCalls issues only the same kernel calls (the emulated
// kernel's own cost), and BM_TrackerMemcpyBaseline copies a 32 MiB bitmap:
// Sync minus KernelCalls is the tracker's user-space cost.

#include <fcntl.h>

#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "iommu/dirty_tracker.h"
#include "iommu/dma_logging_source.h"
#include "iommu/iommufd_source.h"
#include "iommu/uapi_compat.h"
#include "iommu/vfio_type1_source.h"
#include "sim/emulated_iommufd.h"
#include "sim/emulated_kernel.h"
#include "sim/emulated_type1.h"
#include "sim/vfio_device.h"

namespace converge {
namespace {

constexpr uint64_t kGiB = uint64_t{1} << 30;
constexpr uint64_t kRamBytes = uint64_t{1} << 40;
constexpr uint64_t kPage = 4096;
constexpr uint64_t kPages = kRamBytes / kPage;
constexpr uint64_t kDmaPerSync = 1000;

// The emulated machine: 1 TiB mapped in 1 GiB type1 mappings, one iommufd
// IOAS area, and a device with DMA logging.
struct Machine {
  Machine() {
    sim::EmulatedType1Container::Register(kernel);
    container_fd = *kernel.Open("/dev/vfio/vfio", O_RDWR);
    (void)kernel.Ioctl(container_fd, VFIO_SET_IOMMU,
                       reinterpret_cast<void*>(VFIO_TYPE1v2_IOMMU));
    for (uint64_t at = 0; at < kRamBytes; at += kGiB) {
      vfio_iommu_type1_dma_map map{};
      map.argsz = sizeof map;
      map.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
      map.iova = map.vaddr = at;
      map.size = kGiB;
      (void)kernel.Ioctl(container_fd, VFIO_IOMMU_MAP_DMA, &map);
      mappings.push_back({at, kGiB});
    }
    sim::EmulatedIommufd::Register(kernel);
    iommufd = *kernel.Open("/dev/iommu", O_RDWR);
    const uint32_t dev =
        kernel.LookupAs<sim::EmulatedIommufd>(iommufd)->AddDevice(true);
    iommu_ioas_alloc alloc{sizeof alloc, 0, 0};
    (void)kernel.Ioctl(iommufd, IOMMU_IOAS_ALLOC, &alloc);
    iommu_ioas_map m{};
    m.size = sizeof m;
    m.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE;
    m.ioas_id = alloc.out_ioas_id;
    m.length = kRamBytes;
    (void)kernel.Ioctl(iommufd, IOMMU_IOAS_MAP, &m);
    hwpt_id = *IommufdSource::AllocDirtyHwpt(kernel, iommufd, dev,
                                             alloc.out_ioas_id);
    device = sim::EmulatedVfioDevice::Create(kernel, sim::VfioDeviceOptions());
    device_fd = kernel.Install(device);
  }
  void Dma(std::mt19937_64& rng) {
    for (uint64_t i = 0; i < kDmaPerSync; ++i) {
      (void)device->Dma((rng() % kPages) * kPage, 64);
    }
  }

  sim::EmulatedKernel kernel;
  int container_fd = -1, iommufd = -1, device_fd = -1;
  uint32_t hwpt_id = 0;
  std::vector<IovaSpan> mappings;
  std::shared_ptr<sim::EmulatedVfioDevice> device;
};

void BM_TrackerSync(benchmark::State& state) {
  Machine machine;
  VfioType1Source type1(machine.kernel, machine.container_fd,
                        VfioType1Source::Options{{}, machine.mappings});
  IommufdSource iommufd(machine.kernel, machine.iommufd, machine.hwpt_id, {});
  DmaLoggingSource dma_log(machine.kernel, machine.device_fd, {});
  DirtyTracker tracker({RamRegion{0, kRamBytes, nullptr}});
  tracker.AddSource(&type1);
  tracker.AddSource(&iommufd);
  tracker.AddSource(&dma_log);
  if (!tracker.Start().ok()) {
    state.SkipWithError("tracker start failed");
    return;
  }
  std::mt19937_64 rng(1);
  for (auto _ : state) {
    state.PauseTiming();
    machine.Dma(rng);
    state.ResumeTiming();
    if (!tracker.Sync().ok()) state.SkipWithError("sync failed");
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(kPages / 8));
  state.counters["dirty_pages"] = static_cast<double>(tracker.bitmap(0).Count());
}
BENCHMARK(BM_TrackerSync)->Unit(benchmark::kMillisecond)->UseRealTime();

// The three sources' kernel calls alone, one per source per 1 GiB window
// (what a Sync issues), into one reused bitmap. It is not cleared between
// calls: clearing is the caller's work (Sync counts it as its own), and
// what the bitmap holds does not change what a kernel call costs.
void BM_TrackerKernelCalls(benchmark::State& state) {
  Machine machine;
  VfioType1Source type1(machine.kernel, machine.container_fd,
                        VfioType1Source::Options{{}, machine.mappings});
  IommufdSource iommufd(machine.kernel, machine.iommufd, machine.hwpt_id, {});
  DmaLoggingSource dma_log(machine.kernel, machine.device_fd, {});
  const GpaRange range{0, kRamBytes};
  if (!type1.Start({&range, 1}, kPage).ok() ||
      !iommufd.Start({&range, 1}, kPage).ok() ||
      !dma_log.Start({&range, 1}, kPage).ok()) {
    state.SkipWithError("start failed");
    return;
  }
  std::vector<uint64_t> words(kGiB / kPage / 64);
  std::mt19937_64 rng(1);
  Kernel& k = machine.kernel;
  for (auto _ : state) {
    state.PauseTiming();
    machine.Dma(rng);
    state.ResumeTiming();
    for (uint64_t at = 0; at < kRamBytes; at += kGiB) {
      alignas(8) unsigned char t1[48];
      vfio_iommu_type1_dirty_bitmap head{};
      head.argsz = 48;
      head.flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;
      vfio_iommu_type1_dirty_bitmap_get get{};
      get.iova = at;
      get.size = kGiB;
      get.bitmap.pgsize = kPage;
      get.bitmap.size = words.size() * 8;
      get.bitmap.data = reinterpret_cast<__u64*>(words.data());
      std::memcpy(t1, &head, 8);
      std::memcpy(t1 + 8, &get, sizeof get);
      (void)k.Ioctl(machine.container_fd, VFIO_IOMMU_DIRTY_PAGES, t1);

      iommu_hwpt_get_dirty_bitmap g{};
      g.size = sizeof g;
      g.hwpt_id = machine.hwpt_id;
      g.iova = at;
      g.length = kGiB;
      g.page_size = kPage;
      g.data = reinterpret_cast<uintptr_t>(words.data());
      (void)k.Ioctl(machine.iommufd, IOMMU_HWPT_GET_DIRTY_BITMAP, &g);

      alignas(8) unsigned char rep[8 + 32];
      vfio_device_feature f{};
      f.argsz = sizeof rep;
      f.flags = VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT;
      vfio_device_feature_dma_logging_report r{};
      r.iova = at;
      r.length = kGiB;
      r.page_size = kPage;
      r.bitmap = reinterpret_cast<uintptr_t>(words.data());
      std::memcpy(rep, &f, 8);
      std::memcpy(rep + 8, &r, sizeof r);
      (void)k.Ioctl(machine.device_fd, VFIO_DEVICE_FEATURE, rep);
      benchmark::DoNotOptimize(words.data());
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(kPages / 8));
}
BENCHMARK(BM_TrackerKernelCalls)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_TrackerMemcpyBaseline(benchmark::State& state) {
  std::vector<uint64_t> src(kPages / 64, 0x0101), dst(kPages / 64);
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), src.size() * 8);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(src.size() * 8));
}
BENCHMARK(BM_TrackerMemcpyBaseline)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace converge
