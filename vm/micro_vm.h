// MicroVm: a real KVM virtual machine used as a migration workload. One vCPU
// runs the 32-bit protected-mode guest of vm/guest.S (flat segments, no
// paging, no BIOS), which dirties guest RAM in a pattern chosen through a
// mailbox page (vm/guest_abi.h): sequential sweep, uniform random, hot/cold,
// idle, bursts, each with a rate knob, plus one-shot "write exactly these
// pages" commands for exact tests.
//
// Guest RAM is anonymous host memory (MAP_NORESERVE, optionally THP) split
// into one or more memslots starting at GPA 0. A flat 32-bit guest addresses
// only the first 4 GiB, so RAM is at most 4 GiB. The guest's own writes go
// to the mailbox page only (kMailboxPage); workloads write pages at or above
// kFirstWorkloadPage.
//
// Every open/ioctl/mmap on /dev/kvm, the VM and the vCPU goes through the
// Kernel seam.
//
// The vCPU runs in its own thread. Pause() and Resume() are synchronous:
// when Pause() returns the vCPU is out of KVM_RUN and will not re-enter until
// Resume(). Pause kicks KVM_RUN with immediate_exit and SIGUSR1 (a no-op
// handler is installed when SIGUSR1 has none; an existing handler is kept and
// serves as well).
//
// Thread-safety: all methods may be called from any thread, concurrently
// with the vCPU thread. The dirty-ring-full handler runs on the vCPU thread.

#ifndef CONVERGE_VM_MICRO_VM_H_
#define CONVERGE_VM_MICRO_VM_H_

#include <linux/kvm.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "base/status.h"
#include "iommu/kernel.h"
#include "vm/guest_abi.h"
#include "vm/kvm_calls.h"
#include "vm/ram_fill.h"

namespace converge {

enum class GuestWorkload : uint32_t {
  kIdle = CONVERGE_GUEST_MODE_IDLE,              // halted, writes nothing
  kSequential = CONVERGE_GUEST_MODE_SEQUENTIAL,  // sweep, wrap around
  kRandom = CONVERGE_GUEST_MODE_RANDOM,          // uniform (xorshift32)
  kHotCold = CONVERGE_GUEST_MODE_HOT_COLD,       // 90 % to the first 10 %
  kBursts = CONVERGE_GUEST_MODE_BURSTS,          // a batch, then a pause
};

struct WorkloadSpec {
  GuestWorkload kind = GuestWorkload::kIdle;
  // The region written: [first_page, first_page + num_pages); num_pages 0
  // means up to the end of RAM.
  uint64_t first_page = CONVERGE_GUEST_FIRST_WORKLOAD_PAGE;
  uint64_t num_pages = 0;
  // Pages written per second, 0 for as fast as the vCPU goes (about one
  // page per 2 us while every write faults on dirty tracking, far more when
  // rewriting already-dirty pages). The guest paces writes with rdtsc; the
  // period is exact while one write costs less than a period.
  uint64_t rate_pages_per_s = 0;
  // kBursts: pages per burst (sequential through the region), then a pause.
  uint32_t burst_pages = 256;
  uint32_t burst_pause_us = 1000;
  // kRandom / kHotCold: xorshift32 seed (0 is replaced by a fixed constant).
  uint32_t seed = 1;
};

struct MicroVmOptions {
  // Guest RAM; a multiple of 4096 between 128 KiB and 4 GiB. Zero pages of
  // RAM cost no host memory until written.
  uint64_t ram_bytes = uint64_t{64} << 20;
  // RAM is split into memslots of this size (the last may be smaller);
  // 0 = one slot. Each slot is one KVM_GET_DIRTY_LOG.
  uint64_t slot_bytes = 0;
  // Per-vCPU dirty ring in bytes (a power of two, at least 16 KiB on hosts
  // with PML), 0 to track with the dirty log. The ring must be chosen at
  // creation: KVM enables it before vCPUs exist.
  uint32_t dirty_ring_bytes = 0;
  // madvise(MADV_HUGEPAGE) on RAM: faster fill and fewer TLB misses.
  bool huge_pages = true;
  // Fill RAM with the content mix of `fill` (costs ~0.3 s per GiB and makes
  // non-zero pages resident); false leaves every page zero.
  bool fill_ram = true;
  RamFillOptions fill;
};

struct MicroVmStats {
  uint64_t kvm_runs = 0;         // KVM_RUN calls
  uint64_t hlt_exits = 0;        // guest waited for a command
  uint64_t interrupted_exits = 0;  // kicked out by Pause or Stop
  uint64_t ring_full_exits = 0;  // KVM_EXIT_DIRTY_RING_FULL
  uint64_t run_ns = 0;           // time inside KVM_RUN
};

class MicroVm {
 public:
  static constexpr uint64_t kPageBytes = CONVERGE_GUEST_PAGE_BYTES;
  static constexpr uint64_t kMailboxPage =
      CONVERGE_GUEST_MAILBOX_GPA / CONVERGE_GUEST_PAGE_BYTES;
  static constexpr uint64_t kFirstWorkloadPage =
      CONVERGE_GUEST_FIRST_WORKLOAD_PAGE;
  static constexpr uint64_t kMaxPageList = CONVERGE_GUEST_LIST_MAX_PAGES;
  static constexpr uint64_t kMaxRamBytes = uint64_t{4} << 30;
  static constexpr std::chrono::milliseconds kCommandTimeout{20000};

  // Creates the VM, its memslots and its vCPU; the vCPU is not running.
  [[nodiscard]] static Result<std::unique_ptr<MicroVm>> Create(
      Kernel& kernel, const MicroVmOptions& options);

  MicroVm(const MicroVm&) = delete;
  MicroVm& operator=(const MicroVm&) = delete;
  // Stops the vCPU thread, unmaps and closes everything.
  ~MicroVm();

  // Starts the vCPU thread; the guest idles until given a workload.
  // REQUIRES: not started.
  [[nodiscard]] Status Start();
  // Returns once the vCPU is out of KVM_RUN and stays out. OK when already
  // paused or when the vCPU has stopped on an error (see vcpu_status()).
  [[nodiscard]] Status Pause();
  // Lets the vCPU run again. REQUIRES: started.
  [[nodiscard]] Status Resume();
  bool paused() const;

  // Posts a workload. While the vCPU runs, returns once the guest has taken
  // it (the previous workload has stopped writing); while paused, the guest
  // takes it on Resume(). Errors name the field that is out of range.
  [[nodiscard]] Status SetWorkload(const WorkloadSpec& spec);
  // Has the guest write each page of `pages` once (in order), then returns.
  // REQUIRES: running. At most kMaxPageList pages, each a workload page.
  [[nodiscard]] Status WritePages(std::span<const uint64_t> pages);
  // Has the guest write every page of [first_page, first_page + num_pages)
  // once, then returns. REQUIRES: running.
  [[nodiscard]] Status SweepOnce(uint64_t first_page, uint64_t num_pages);

  // Pages the guest has written since creation (all workloads).
  uint64_t pages_written() const;
  // Waits until pages_written() >= count; kUnavailable on timeout.
  [[nodiscard]] Status WaitForPagesWritten(uint64_t count,
                                           std::chrono::milliseconds timeout);
  // OK, or the error that stopped the vCPU thread.
  Status vcpu_status() const;

  // Called on the vCPU thread on KVM_EXIT_DIRTY_RING_FULL; must harvest
  // and reset the rings (KvmDirtyRingSource::CollectFull with vcpu_fds()[0],
  // which can also repair a ring KVM overran). After 1000
  // full exits in a row the vCPU stops with kResourceExhausted. REQUIRES:
  // before Start().
  void SetDirtyRingFullHandler(std::function<Status()> handler);

  uint8_t* ram() const { return ram_; }
  uint64_t ram_bytes() const { return options_.ram_bytes; }
  uint64_t num_pages() const { return options_.ram_bytes / kPageBytes; }
  const std::vector<KvmMemslot>& memslots() const { return slots_; }
  int vm_fd() const { return vm_fd_.get(); }
  std::vector<int> vcpu_fds() const { return {vcpu_fd_.get()}; }
  // Empty unless options.dirty_ring_bytes != 0.
  const std::vector<KvmDirtyRing>& dirty_rings() const { return rings_; }
  uint32_t tsc_khz() const { return tsc_khz_; }
  const RamFillCounts& fill_counts() const { return fill_counts_; }
  MicroVmStats stats() const;

 private:
  enum class VcpuState : uint8_t { kIdle, kRunning, kPaused, kStopped };

  MicroVm(Kernel& kernel, const MicroVmOptions& options);
  Status Init();
  Status CreateMemslots();
  Status CreateVcpu();
  void StopThread();
  void VcpuLoop();
  // Handles the exit in run_; false when the vCPU must stop.
  bool HandleExit(std::unique_lock<std::mutex>& lock);
  void Fail(Status status);

  std::atomic_ref<uint32_t> MailboxWord(uint32_t offset) const;
  bool CommandPending() const;
  // Posts the command fields already written and waits for the guest to
  // acknowledge it (unless paused).
  Status PostCommand(uint32_t mode, std::unique_lock<std::mutex>& lock);
  Status RunOneShot(uint32_t mode);
  // Started, not stopped, not paused. REQUIRES: mu_ held.
  bool RunningLocked() const;
  // Waits until done() (checked under mu_) or kCommandTimeout; false on
  // timeout.
  bool WaitPolling(std::unique_lock<std::mutex>& lock,
                   const std::function<bool()>& done);
  Status CheckRegion(uint64_t first_page, uint64_t num_pages) const;

  Kernel& kernel_;
  const MicroVmOptions options_;
  KernelFd kvm_fd_;
  KernelFd vm_fd_;
  KernelFd vcpu_fd_;
  uint8_t* ram_ = nullptr;
  kvm_run* run_ = nullptr;
  size_t run_bytes_ = 0;
  std::vector<KvmMemslot> slots_;
  std::vector<KvmDirtyRing> rings_;
  uint32_t tsc_khz_ = 0;
  RamFillCounts fill_counts_;
  std::function<Status()> ring_full_handler_;

  mutable std::mutex mu_;
  std::condition_variable cv_;  // any change of the fields below
  std::thread thread_;
  VcpuState state_ = VcpuState::kIdle;
  bool pause_requested_ = false;
  bool stop_ = false;
  uint32_t command_seq_ = 0;
  static constexpr uint32_t kMaxRingFullInARow = 1000;
  uint32_t ring_full_in_a_row_ = 0;  // vCPU thread only
  Status vcpu_status_;

  std::atomic<uint64_t> kvm_runs_{0};
  std::atomic<uint64_t> hlt_exits_{0};
  std::atomic<uint64_t> interrupted_exits_{0};
  std::atomic<uint64_t> ring_full_exits_{0};
  std::atomic<uint64_t> run_ns_{0};
};

}  // namespace converge

#endif  // CONVERGE_VM_MICRO_VM_H_
