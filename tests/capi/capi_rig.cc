#include "tests/capi/capi_rig.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "engine/converge_cpp.h"
#include "sim/emulated_kernel.h"
#include "sim/vfio_device.h"
#include "vm/micro_vm.h"

struct capi_rig {
  converge::sim::EmulatedKernel emulated;
  converge_kernel* handle = nullptr;
  std::unique_ptr<converge::MicroVm> vm;
  std::vector<std::shared_ptr<converge::sim::EmulatedVfioDevice>> src, dst;
  std::vector<int> src_fds, dst_fds;
  uint8_t* dst_ram = nullptr;
  uint64_t ram_bytes = 0;
};

namespace {

converge::sim::VfioDeviceOptions DeviceOptions() {
  converge::sim::VfioDeviceOptions o;
  o.precopy_initial_bytes = 512 << 10;
  o.stop_copy_bytes = 256 << 10;
  o.dirty_bytes_per_sec = 1 << 20;
  o.max_dirty_bytes = 1 << 20;
  return o;
}

}  // namespace

extern "C" {

int capi_kvm_available(void) {
  const int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd < 0) return 0;
  close(fd);
  return 1;
}

capi_rig* capi_rig_create(uint64_t ram_bytes) {
  auto rig = std::make_unique<capi_rig>();
  converge::MicroVmOptions vo;
  vo.ram_bytes = ram_bytes;
  auto vm = converge::MicroVm::Create(converge::Kernel::Default(), vo);
  if (!vm.ok()) {
    std::fprintf(stderr, "micro-VM: %s\n", vm.status().ToString().c_str());
    return nullptr;
  }
  rig->vm = std::move(*vm);
  converge::WorkloadSpec w;
  w.kind = converge::GuestWorkload::kSequential;
  w.rate_pages_per_s = 20000;
  converge::Status s = rig->vm->Start();
  if (s.ok()) s = rig->vm->SetWorkload(w);
  if (!s.ok()) {
    std::fprintf(stderr, "micro-VM: %s\n", s.ToString().c_str());
    return nullptr;
  }
  for (int i = 0; i < 2; ++i) {
    converge::sim::VfioDeviceOptions o = DeviceOptions();
    o.seed = static_cast<uint64_t>(i) + 7;
    rig->src.push_back(converge::sim::EmulatedVfioDevice::Create(rig->emulated, o));
    rig->src_fds.push_back(rig->emulated.Install(rig->src.back()));
  }
  void* dst = mmap(nullptr, ram_bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (dst == MAP_FAILED) return nullptr;
  rig->dst_ram = static_cast<uint8_t*>(dst);
  rig->ram_bytes = ram_bytes;
  rig->handle = converge_kernel_wrap(rig->emulated);
  capi_rig_new_dst(rig.get());
  return rig.release();
}

void capi_rig_destroy(capi_rig* rig) {
  if (rig == nullptr) return;
  converge_kernel_destroy(rig->handle);
  rig->vm.reset();
  if (rig->dst_ram != nullptr) munmap(rig->dst_ram, rig->ram_bytes);
  delete rig;
}

converge_kernel* capi_rig_kernel(capi_rig* rig) { return rig->handle; }
int capi_rig_vm_fd(capi_rig* rig) { return rig->vm->vm_fd(); }

size_t capi_rig_slots(capi_rig* rig, converge_kvm_slot* out, size_t max) {
  const auto& slots = rig->vm->memslots();
  for (size_t i = 0; i < slots.size() && i < max; ++i) {
    out[i] = converge_kvm_slot{slots[i].slot, slots[i].flags, slots[i].gpa,
                               slots[i].bytes, slots[i].host};
  }
  return slots.size();
}

void* capi_rig_ram(capi_rig* rig) { return rig->vm->ram(); }
void* capi_rig_dst_ram(capi_rig* rig) { return rig->dst_ram; }
uint64_t capi_rig_ram_bytes(capi_rig* rig) { return rig->ram_bytes; }
int capi_rig_src_device_fd(capi_rig* rig, int i) { return rig->src_fds[i]; }
int capi_rig_dst_device_fd(capi_rig* rig, int i) { return rig->dst_fds[i]; }

void capi_rig_new_dst(capi_rig* rig) {
  rig->dst.clear();
  rig->dst_fds.clear();
  for (int i = 0; i < 2; ++i) {
    rig->dst.push_back(
        converge::sim::EmulatedVfioDevice::Create(rig->emulated, DeviceOptions()));
    rig->dst_fds.push_back(rig->emulated.Install(rig->dst.back()));
  }
}

int capi_rig_pause(void* rig) {
  return static_cast<capi_rig*>(rig)->vm->Pause().ok() ? 0 : -1;
}
void capi_rig_resume(void* rig) {
  (void)static_cast<capi_rig*>(rig)->vm->Resume();
}

int capi_rig_src_device_running(capi_rig* rig, int i) {
  return rig->src[i]->state() == converge::sim::MigState::kRunning;
}

int capi_rig_verify(capi_rig* rig) {
  if (std::memcmp(rig->vm->ram(), rig->dst_ram, rig->vm->ram_bytes()) != 0) {
    std::fprintf(stderr, "RAM differs\n");
    return 0;
  }
  for (size_t i = 0; i < rig->dst.size(); ++i) {
    if (!rig->dst[i]->restored_ok() ||
        rig->dst[i]->restored_hash() != rig->src[i]->stream_hash()) {
      std::fprintf(stderr, "device %zu not restored\n", i);
      return 0;
    }
  }
  return 1;
}

}  // extern "C"
