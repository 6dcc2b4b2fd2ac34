// Shared pieces of the real-KVM tests: skipping without /dev/kvm, small
// VMs, and whole-RAM harvests.

#ifndef CONVERGE_TESTS_VM_KVM_TEST_SUPPORT_H_
#define CONVERGE_TESTS_VM_KVM_TEST_SUPPORT_H_

#include <cstdint>
#include <memory>
#include <set>
#include <vector>

#include "bitmap/dirty_bitmap.h"
#include "iommu/dirty_source.h"
#include "vm/micro_vm.h"

namespace converge::testing {

// True when /dev/kvm opens read-write.
bool KvmAvailable();

#define CONVERGE_SKIP_WITHOUT_KVM()                          \
  do {                                                       \
    if (!::converge::testing::KvmAvailable()) {              \
      GTEST_SKIP() << "/dev/kvm cannot be opened";           \
    }                                                        \
  } while (0)

// A small VM (no RAM fill: tests compare against exact page sets) with its
// vCPU started.
std::unique_ptr<MicroVm> StartedVm(Kernel& kernel, MicroVmOptions options);

// The whole RAM as one tracked range.
std::vector<GpaRange> WholeRam(const MicroVm& vm);

// Harvests [0, ram) into a fresh bitmap in windows of window_pages.
DirtyBitmap HarvestRam(DirtySource& source, const MicroVm& vm,
                       uint64_t window_pages = UINT64_MAX);
// Re-arms [0, ram) in windows of window_pages.
void RearmRam(DirtySource& source, const MicroVm& vm,
              uint64_t window_pages = UINT64_MAX);

std::set<uint64_t> PagesOf(const DirtyBitmap& bitmap);
// pages plus the mailbox page the guest writes on every command.
std::set<uint64_t> WithMailbox(const std::vector<uint64_t>& pages);

// count distinct workload pages of a VM of num_pages, pseudo-random from seed
// and sorted, always including the first and last workload pages.
std::vector<uint64_t> SomePages(uint64_t num_pages, uint64_t count,
                                uint64_t seed);

}  // namespace converge::testing

#endif  // CONVERGE_TESTS_VM_KVM_TEST_SUPPORT_H_
