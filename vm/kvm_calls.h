// Thin wrappers over the KVM ioctls converge issues, one per call, all
// through the Kernel seam. Each returns the kernel's answer or an error whose
// message names the call and its object ("KVM_GET_DIRTY_LOG slot 2: ...").
//
// Thread-safety: the wrappers hold no state; KVM serializes the calls that
// need it.

#ifndef CONVERGE_VM_KVM_CALLS_H_
#define CONVERGE_VM_KVM_CALLS_H_

#include <cstdint>
#include <span>

#include "base/status.h"
#include "iommu/kernel.h"
#include "iommu/uapi_compat.h"

namespace converge {

// KVM's dirty-tracking granularity on x86.
inline constexpr uint64_t kKvmPageBytes = 4096;

// One KVM memory slot: guest-physical [gpa, gpa + bytes) backed by host
// memory at host. slot is (address space << 16) | id.
struct KvmMemslot {
  uint32_t slot = 0;
  uint64_t gpa = 0;
  uint64_t bytes = 0;
  void* host = nullptr;
  uint32_t flags = 0;  // KVM_MEM_* as last set

  uint64_t first_page() const { return gpa / kKvmPageBytes; }
  uint64_t num_pages() const { return bytes / kKvmPageBytes; }
  // 64-bit words of the slot's dirty bitmap.
  uint64_t bitmap_words() const { return (num_pages() + 63) / 64; }
};

// One vCPU's dirty ring as mapped from its fd (KVM_DIRTY_LOG_PAGE_OFFSET).
struct KvmDirtyRing {
  int vcpu_fd = -1;
  kvm_dirty_gfn* gfns = nullptr;
  uint32_t num_entries = 0;  // a power of two
};

// KVM_GET_API_VERSION on /dev/kvm: returns the version (12).
[[nodiscard]] Result<int> KvmGetApiVersion(Kernel& kernel, int kvm_fd);
// KVM_CHECK_EXTENSION on /dev/kvm or a VM fd: 0 when absent, else the
// capability's value (a flag set or a maximum, depending on cap).
[[nodiscard]] Result<int> KvmCheckExtension(Kernel& kernel, int fd, long cap);
// KVM_CREATE_VM (type 0): returns the VM fd.
[[nodiscard]] Result<int> KvmCreateVm(Kernel& kernel, int kvm_fd);
// KVM_ENABLE_CAP on a VM fd with args[0] = arg0.
[[nodiscard]] Status KvmEnableCap(Kernel& kernel, int vm_fd, uint32_t cap,
                                  uint64_t arg0);
// KVM_SET_USER_MEMORY_REGION: creates or updates slot.slot with slot.flags.
[[nodiscard]] Status KvmSetMemslot(Kernel& kernel, int vm_fd,
                                   const KvmMemslot& slot);
// KVM_CREATE_VCPU: returns the vCPU fd.
[[nodiscard]] Result<int> KvmCreateVcpu(Kernel& kernel, int vm_fd,
                                        uint32_t vcpu_id);
// KVM_GET_VCPU_MMAP_SIZE on /dev/kvm: bytes of the kvm_run mapping.
[[nodiscard]] Result<int> KvmGetVcpuMmapSize(Kernel& kernel, int kvm_fd);
// KVM_GET_SREGS / KVM_SET_SREGS / KVM_SET_REGS on a vCPU fd.
[[nodiscard]] Status KvmGetSregs(Kernel& kernel, int vcpu_fd,
                                 kvm_sregs& sregs);
[[nodiscard]] Status KvmSetSregs(Kernel& kernel, int vcpu_fd,
                                 const kvm_sregs& sregs);
[[nodiscard]] Status KvmSetRegs(Kernel& kernel, int vcpu_fd,
                                const kvm_regs& regs);
// KVM_GET_TSC_KHZ on a vCPU fd: the guest TSC frequency in kHz.
[[nodiscard]] Result<uint32_t> KvmGetTscKhz(Kernel& kernel, int vcpu_fd);
// KVM_RUN: returns when the vCPU exits to user space; kInterrupted when a
// signal or immediate_exit stopped it (never retried here).
[[nodiscard]] Status KvmRun(Kernel& kernel, int vcpu_fd);
// KVM_GET_DIRTY_LOG for a whole slot into bitmap (bit 0 = the slot's first
// page). REQUIRES: bitmap.size() >= the slot's bitmap_words().
[[nodiscard]] Status KvmGetDirtyLog(Kernel& kernel, int vm_fd, uint32_t slot,
                                    std::span<uint64_t> bitmap);
// KVM_CLEAR_DIRTY_LOG: re-protects the set bits of bitmap (bit 0 =
// first_page) among [first_page, first_page + num_pages) of slot.
// REQUIRES: first_page % 64 == 0; num_pages % 64 == 0 unless the range ends
// the slot; bitmap holds ceil(num_pages / 64) words.
[[nodiscard]] Status KvmClearDirtyLog(Kernel& kernel, int vm_fd,
                                      uint32_t slot, uint64_t first_page,
                                      uint32_t num_pages,
                                      std::span<const uint64_t> bitmap);
// KVM_RESET_DIRTY_RINGS: re-protects every ring entry marked RESET; returns
// how many entries the kernel reset.
[[nodiscard]] Result<int> KvmResetDirtyRings(Kernel& kernel, int vm_fd);

}  // namespace converge

#endif  // CONVERGE_VM_KVM_CALLS_H_
