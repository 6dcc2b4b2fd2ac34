#include "vm/kvm_calls.h"

#include <cassert>
#include <string>

namespace converge {
namespace {

std::string SlotName(const char* call, uint32_t slot) {
  return std::string(call) + " slot " + std::to_string(slot);
}

}  // namespace

Result<int> KvmGetApiVersion(Kernel& kernel, int kvm_fd) {
  Result<int> r = kernel.Ioctl(kvm_fd, KVM_GET_API_VERSION, nullptr);
  if (!r.ok()) return r.status().WithContext("KVM_GET_API_VERSION");
  return r;
}

Result<int> KvmCheckExtension(Kernel& kernel, int fd, long cap) {
  Result<int> r = kernel.Ioctl(fd, KVM_CHECK_EXTENSION,
                               reinterpret_cast<void*>(cap));
  if (!r.ok()) {
    return r.status().WithContext("KVM_CHECK_EXTENSION " +
                                  std::to_string(cap));
  }
  return r;
}

Result<int> KvmCreateVm(Kernel& kernel, int kvm_fd) {
  Result<int> r = kernel.Ioctl(kvm_fd, KVM_CREATE_VM, nullptr);
  if (!r.ok()) return r.status().WithContext("KVM_CREATE_VM");
  return r;
}

Status KvmEnableCap(Kernel& kernel, int vm_fd, uint32_t cap, uint64_t arg0) {
  kvm_enable_cap enable{};
  enable.cap = cap;
  enable.args[0] = arg0;
  Result<int> r = kernel.Ioctl(vm_fd, KVM_ENABLE_CAP, &enable);
  if (!r.ok()) {
    return r.status().WithContext("KVM_ENABLE_CAP " + std::to_string(cap) +
                                  " arg " + std::to_string(arg0));
  }
  return OkStatus();
}

Status KvmSetMemslot(Kernel& kernel, int vm_fd, const KvmMemslot& slot) {
  kvm_userspace_memory_region region{};
  region.slot = slot.slot;
  region.flags = slot.flags;
  region.guest_phys_addr = slot.gpa;
  region.memory_size = slot.bytes;
  region.userspace_addr = reinterpret_cast<uint64_t>(slot.host);
  Result<int> r = kernel.Ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &region);
  if (!r.ok()) {
    return r.status().WithContext(
        SlotName("KVM_SET_USER_MEMORY_REGION", slot.slot) + " flags " +
        std::to_string(slot.flags));
  }
  return OkStatus();
}

Result<int> KvmCreateVcpu(Kernel& kernel, int vm_fd, uint32_t vcpu_id) {
  Result<int> r = kernel.Ioctl(vm_fd, KVM_CREATE_VCPU,
                               reinterpret_cast<void*>(uintptr_t{vcpu_id}));
  if (!r.ok()) {
    return r.status().WithContext("KVM_CREATE_VCPU " +
                                  std::to_string(vcpu_id));
  }
  return r;
}

Result<int> KvmGetVcpuMmapSize(Kernel& kernel, int kvm_fd) {
  Result<int> r = kernel.Ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, nullptr);
  if (!r.ok()) return r.status().WithContext("KVM_GET_VCPU_MMAP_SIZE");
  return r;
}

Status KvmGetSregs(Kernel& kernel, int vcpu_fd, kvm_sregs& sregs) {
  Result<int> r = kernel.Ioctl(vcpu_fd, KVM_GET_SREGS, &sregs);
  if (!r.ok()) return r.status().WithContext("KVM_GET_SREGS");
  return OkStatus();
}

Status KvmSetSregs(Kernel& kernel, int vcpu_fd, const kvm_sregs& sregs) {
  Result<int> r = kernel.Ioctl(vcpu_fd, KVM_SET_SREGS,
                               const_cast<kvm_sregs*>(&sregs));
  if (!r.ok()) return r.status().WithContext("KVM_SET_SREGS");
  return OkStatus();
}

Status KvmSetRegs(Kernel& kernel, int vcpu_fd, const kvm_regs& regs) {
  Result<int> r = kernel.Ioctl(vcpu_fd, KVM_SET_REGS,
                               const_cast<kvm_regs*>(&regs));
  if (!r.ok()) return r.status().WithContext("KVM_SET_REGS");
  return OkStatus();
}

Result<uint32_t> KvmGetTscKhz(Kernel& kernel, int vcpu_fd) {
  Result<int> r = kernel.Ioctl(vcpu_fd, KVM_GET_TSC_KHZ, nullptr);
  if (!r.ok()) return r.status().WithContext("KVM_GET_TSC_KHZ");
  if (*r == 0) return NotSupportedError("KVM_GET_TSC_KHZ: frequency unknown");
  return static_cast<uint32_t>(*r);
}

Status KvmRun(Kernel& kernel, int vcpu_fd) {
  Result<int> r =
      kernel.Ioctl(vcpu_fd, KVM_RUN, nullptr, EintrPolicy::kReturn);
  if (!r.ok()) return r.status().WithContext("KVM_RUN");
  return OkStatus();
}

Status KvmGetDirtyLog(Kernel& kernel, int vm_fd, uint32_t slot,
                      std::span<uint64_t> bitmap) {
  kvm_dirty_log log{};
  log.slot = slot;
  log.dirty_bitmap = bitmap.data();
  Result<int> r = kernel.Ioctl(vm_fd, KVM_GET_DIRTY_LOG, &log);
  if (!r.ok()) {
    return r.status().WithContext(SlotName("KVM_GET_DIRTY_LOG", slot));
  }
  return OkStatus();
}

Status KvmClearDirtyLog(Kernel& kernel, int vm_fd, uint32_t slot,
                        uint64_t first_page, uint32_t num_pages,
                        std::span<const uint64_t> bitmap) {
  assert(first_page % 64 == 0);
  assert(bitmap.size() >= (uint64_t{num_pages} + 63) / 64);
  kvm_clear_dirty_log clear{};
  clear.slot = slot;
  clear.num_pages = num_pages;
  clear.first_page = first_page;
  clear.dirty_bitmap = const_cast<uint64_t*>(bitmap.data());
  Result<int> r = kernel.Ioctl(vm_fd, KVM_CLEAR_DIRTY_LOG, &clear);
  if (!r.ok()) {
    return r.status().WithContext(
        SlotName("KVM_CLEAR_DIRTY_LOG", slot) + " pages [" +
        std::to_string(first_page) + ", +" + std::to_string(num_pages) + ")");
  }
  return OkStatus();
}

Result<int> KvmResetDirtyRings(Kernel& kernel, int vm_fd) {
  Result<int> r = kernel.Ioctl(vm_fd, KVM_RESET_DIRTY_RINGS, nullptr);
  if (!r.ok()) return r.status().WithContext("KVM_RESET_DIRTY_RINGS");
  return r;
}

}  // namespace converge
