// EmulatedRig: an emulated kernel with a type1 container, an iommufd HWPT
// and a VFIO device with DMA logging, all mapping one RAM region at
// identity IOVA, for the source and tracker tests.

#ifndef CONVERGE_TESTS_IOMMU_EMULATED_RIG_H_
#define CONVERGE_TESTS_IOMMU_EMULATED_RIG_H_

#include <fcntl.h>

#include <memory>

#include "gtest/gtest.h"
#include "iommu/uapi_compat.h"
#include "sim/emulated_iommufd.h"
#include "sim/emulated_kernel.h"
#include "sim/emulated_type1.h"
#include "sim/vfio_device.h"

namespace converge::testing {

struct EmulatedRig {
  explicit EmulatedRig(uint64_t ram_gpa, uint64_t ram_bytes,
                       sim::EmulatedType1Options type1 = {},
                       uint32_t mappings = 1)
      : gpa(ram_gpa), bytes(ram_bytes) {
    sim::EmulatedType1Container::Register(kernel, type1);
    container_fd = *kernel.Open("/dev/vfio/vfio", O_RDWR);
    EXPECT_TRUE(kernel.Ioctl(container_fd, VFIO_SET_IOMMU,
                             reinterpret_cast<void*>(VFIO_TYPE1v2_IOMMU))
                    .ok());
    const uint64_t per = bytes / mappings;
    for (uint32_t i = 0; i < mappings; ++i) {
      vfio_iommu_type1_dma_map map{};
      map.argsz = sizeof map;
      map.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
      map.iova = gpa + i * per;
      map.vaddr = map.iova;
      map.size = per;
      EXPECT_TRUE(kernel.Ioctl(container_fd, VFIO_IOMMU_MAP_DMA, &map).ok());
    }
    type1_container = kernel.LookupAs<sim::EmulatedType1Container>(container_fd);

    sim::EmulatedIommufd::Register(kernel);
    iommufd = *kernel.Open("/dev/iommu", O_RDWR);
    auto emu = kernel.LookupAs<sim::EmulatedIommufd>(iommufd);
    dev_id = emu->AddDevice(true);
    iommu_ioas_alloc alloc{sizeof alloc, 0, 0};
    EXPECT_TRUE(kernel.Ioctl(iommufd, IOMMU_IOAS_ALLOC, &alloc).ok());
    ioas_id = alloc.out_ioas_id;
    iommu_ioas_map m{};
    m.size = sizeof m;
    m.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE;
    m.ioas_id = ioas_id;
    m.iova = gpa;
    m.user_va = gpa;
    m.length = bytes;
    EXPECT_TRUE(kernel.Ioctl(iommufd, IOMMU_IOAS_MAP, &m).ok());
    iommu_hwpt_alloc h{};
    h.size = sizeof h;
    h.flags = IOMMU_HWPT_ALLOC_DIRTY_TRACKING;
    h.dev_id = dev_id;
    h.pt_id = ioas_id;
    EXPECT_TRUE(kernel.Ioctl(iommufd, IOMMU_HWPT_ALLOC, &h).ok());
    hwpt_id = h.out_hwpt_id;

    device = sim::EmulatedVfioDevice::Create(kernel, sim::VfioDeviceOptions());
    device_fd = kernel.Install(device);
  }

  // The device writes [iova, iova + len): its DMA log and every IOMMU.
  void Dma(uint64_t iova, uint64_t len) {
    ASSERT_TRUE(device->Dma(iova, len).ok());
  }

  sim::EmulatedKernel kernel;
  uint64_t gpa, bytes;
  int container_fd = -1;
  std::shared_ptr<sim::EmulatedType1Container> type1_container;
  int iommufd = -1;
  uint32_t dev_id = 0, ioas_id = 0, hwpt_id = 0;
  std::shared_ptr<sim::EmulatedVfioDevice> device;
  int device_fd = -1;
};

}  // namespace converge::testing

#endif  // CONVERGE_TESTS_IOMMU_EMULATED_RIG_H_
