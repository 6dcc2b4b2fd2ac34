#include "tests/vm/kvm_test_support.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <random>

#include "gtest/gtest.h"

namespace converge::testing {

bool KvmAvailable() {
  int fd = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

std::unique_ptr<MicroVm> StartedVm(Kernel& kernel, MicroVmOptions options) {
  Result<std::unique_ptr<MicroVm>> vm = MicroVm::Create(kernel, options);
  EXPECT_TRUE(vm.ok()) << vm.status().ToString();
  if (!vm.ok()) return nullptr;
  EXPECT_TRUE((*vm)->Start().ok());
  return std::move(*vm);
}

std::vector<GpaRange> WholeRam(const MicroVm& vm) {
  return {GpaRange{0, vm.ram_bytes()}};
}

DirtyBitmap HarvestRam(DirtySource& source, const MicroVm& vm,
                       uint64_t window_pages) {
  DirtyBitmap out(vm.num_pages());
  for (uint64_t first = 0; first < vm.num_pages(); first += window_pages) {
    const uint64_t n = std::min(window_pages, vm.num_pages() - first);
    Status s = source.Harvest(first * MicroVm::kPageBytes, n, out, first);
    EXPECT_TRUE(s.ok()) << s.ToString();
    if (window_pages == UINT64_MAX) break;
  }
  return out;
}

void RearmRam(DirtySource& source, const MicroVm& vm, uint64_t window_pages) {
  for (uint64_t first = 0; first < vm.num_pages(); first += window_pages) {
    const uint64_t n = std::min(window_pages, vm.num_pages() - first);
    Status s = source.Rearm(first * MicroVm::kPageBytes, n);
    EXPECT_TRUE(s.ok()) << s.ToString();
    if (window_pages == UINT64_MAX) break;
  }
}

std::set<uint64_t> PagesOf(const DirtyBitmap& bitmap) {
  std::set<uint64_t> pages;
  bitmap.ForEachRun([&](PageRun r) {
    for (uint64_t p = r.first; p < r.first + r.count; ++p) pages.insert(p);
  });
  return pages;
}

std::set<uint64_t> WithMailbox(const std::vector<uint64_t>& pages) {
  std::set<uint64_t> s(pages.begin(), pages.end());
  s.insert(MicroVm::kMailboxPage);
  return s;
}

std::vector<uint64_t> SomePages(uint64_t num_pages, uint64_t count,
                                uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::set<uint64_t> s{MicroVm::kFirstWorkloadPage, num_pages - 1};
  std::uniform_int_distribution<uint64_t> dist(MicroVm::kFirstWorkloadPage,
                                               num_pages - 1);
  while (s.size() < count) s.insert(dist(rng));
  return {s.begin(), s.end()};
}

}  // namespace converge::testing
