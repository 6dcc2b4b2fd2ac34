// KVM dirty-log harvest cost on the real micro-VM: KVM_GET_DIRTY_LOG plus
// KVM_CLEAR_DIRTY_LOG per GiB of guest RAM, with and without manual
// protect, for a sparse and a dense dirty set; and the cost of starting
// dirty logging with and without INITIALLY_SET. Bytes processed are guest
// bytes covered, so bytes/s reads as GiB of guest per second.

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <memory>
#include <vector>

#include "benchmark/benchmark.h"
#include "vm/kvm_dirty_log_source.h"
#include "vm/micro_vm.h"

namespace converge {
namespace {

constexpr uint64_t kGiB = uint64_t{1} << 30;

bool KvmAvailable() {
  int fd = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

// One started VM per size, shared by the benchmarks.
MicroVm* VmOfGiB(uint64_t gib) {
  static std::map<uint64_t, std::unique_ptr<MicroVm>> vms;
  auto it = vms.find(gib);
  if (it != vms.end()) return it->second.get();
  MicroVmOptions o;
  o.ram_bytes = gib * kGiB;
  o.fill_ram = false;
  Result<std::unique_ptr<MicroVm>> vm = MicroVm::Create(Kernel::Default(), o);
  if (!vm.ok() || !(*vm)->Start().ok()) return nullptr;
  return (vms[gib] = std::move(*vm)).get();
}

// Has the guest dirty its pages: every 512th (sparse) or all (dense).
bool Dirty(MicroVm& vm, bool dense) {
  const uint64_t first = MicroVm::kFirstWorkloadPage;
  if (dense) return vm.SweepOnce(first, vm.num_pages() - first).ok();
  std::vector<uint64_t> pages;
  for (uint64_t p = first; p < vm.num_pages(); p += 512) pages.push_back(p);
  return vm.WritePages(pages).ok();
}

// Args: manual protect (0/1), dense (0/1).
void BM_KvmHarvest(benchmark::State& state) {
  if (!KvmAvailable()) return state.SkipWithError("no /dev/kvm");
  MicroVm* vm = VmOfGiB(1);
  if (vm == nullptr) return state.SkipWithError("micro-VM creation failed");
  KvmDirtyLogOptions options;
  options.manual_protect = state.range(0) != 0;
  const bool dense = state.range(1) != 0;
  KvmDirtyLogSource source(Kernel::Default(), vm->vm_fd(), vm->memslots(),
                           options);
  const GpaRange ram{0, vm->ram_bytes()};
  if (!source.Start({&ram, 1}, 4096).ok()) {
    return state.SkipWithError("start failed");
  }
  DirtyBitmap out(vm->num_pages());
  (void)source.Harvest(0, vm->num_pages(), out, 0);
  (void)source.Rearm(0, vm->num_pages());
  for (auto _ : state) {
    state.PauseTiming();
    if (!Dirty(*vm, dense)) return state.SkipWithError("guest failed");
    out.ClearAll();
    source.InvalidateCache();
    state.ResumeTiming();
    if (!source.Harvest(0, vm->num_pages(), out, 0).ok() ||
        !source.Rearm(0, vm->num_pages()).ok()) {
      return state.SkipWithError("harvest failed");
    }
    benchmark::DoNotOptimize(out.words().data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() *
                                               vm->ram_bytes()));
  state.counters["dirty_pages"] = static_cast<double>(out.Count());
}
BENCHMARK(BM_KvmHarvest)
    ->ArgNames({"manual", "dense"})
    ->Args({0, 0})->Args({1, 0})->Args({0, 1})->Args({1, 1})
    ->Iterations(5)
    ->Unit(benchmark::kMillisecond);

// Arg: INITIALLY_SET (0/1). The guest has touched every page first, so
// without INITIALLY_SET KVM write-protects a fully mapped GiB at Start.
void BM_KvmStartDirtyLog(benchmark::State& state) {
  if (!KvmAvailable()) return state.SkipWithError("no /dev/kvm");
  MicroVm* vm = VmOfGiB(1);
  if (vm == nullptr) return state.SkipWithError("micro-VM creation failed");
  KvmDirtyLogOptions options;
  options.initially_set = state.range(0) != 0;
  const GpaRange ram{0, vm->ram_bytes()};
  for (auto _ : state) {
    state.PauseTiming();
    KvmDirtyLogSource source(Kernel::Default(), vm->vm_fd(), vm->memslots(),
                             options);
    if (!Dirty(*vm, true)) return state.SkipWithError("guest failed");
    state.ResumeTiming();
    if (!source.Start({&ram, 1}, 4096).ok()) {
      return state.SkipWithError("start failed");
    }
    state.PauseTiming();
    (void)source.Stop();
    state.ResumeTiming();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() *
                                               vm->ram_bytes()));
}
BENCHMARK(BM_KvmStartDirtyLog)
    ->ArgName("initially_set")
    ->Arg(0)->Arg(1)
    ->Iterations(3)
    ->Unit(benchmark::kMillisecond);

// Baseline: copying one GiB's dirty bitmap (32 KiB), the user-space floor
// of any harvest.
void BM_KvmBitmapCopyBaseline(benchmark::State& state) {
  const size_t words = kGiB / 4096 / 64;
  std::vector<uint64_t> src(words, 0x5555), dst(words);
  for (auto _ : state) {
    memcpy(dst.data(), src.data(), words * 8);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kGiB));
}
BENCHMARK(BM_KvmBitmapCopyBaseline);

}  // namespace
}  // namespace converge
