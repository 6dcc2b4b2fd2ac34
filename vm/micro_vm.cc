// MicroVm: creation, memory, and the mailbox commands. The vCPU thread is in
// micro_vm_vcpu.cc.

#include "vm/micro_vm.h"

#include <fcntl.h>
#include <sys/mman.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <string>

namespace converge {

extern "C" const uint8_t converge_guest_code_start[];
extern "C" const uint8_t converge_guest_code_end[];

namespace {

constexpr int kKvmApiVersion = 12;
constexpr uint32_t kDefaultSeed = 0x9e3779b9;

std::string Pages(uint64_t first, uint64_t count) {
  return "[" + std::to_string(first) + ", +" + std::to_string(count) + ")";
}

}  // namespace

MicroVm::MicroVm(Kernel& kernel, const MicroVmOptions& options)
    : kernel_(kernel), options_(options) {}

Result<std::unique_ptr<MicroVm>> MicroVm::Create(
    Kernel& kernel, const MicroVmOptions& options) {
  const uint64_t ram = options.ram_bytes;
  if (ram % kPageBytes != 0 || ram < 2 * kFirstWorkloadPage * kPageBytes ||
      ram > kMaxRamBytes) {
    return InvalidArgumentError(
        "MicroVm ram_bytes " + std::to_string(ram) +
        ": must be a multiple of 4096 in [128 KiB, 4 GiB] (a flat 32-bit "
        "guest addresses only the first 4 GiB)");
  }
  if (options.slot_bytes % kPageBytes != 0) {
    return InvalidArgumentError("MicroVm slot_bytes " +
                                std::to_string(options.slot_bytes) +
                                ": must be a multiple of 4096");
  }
  const uint32_t ring = options.dirty_ring_bytes;
  if (ring != 0 && (!std::has_single_bit(ring) || ring < kPageBytes)) {
    return InvalidArgumentError("MicroVm dirty_ring_bytes " +
                                std::to_string(ring) +
                                ": must be 0 or a power of two >= 4096");
  }
  std::unique_ptr<MicroVm> vm(new MicroVm(kernel, options));
  CONVERGE_RETURN_IF_ERROR(vm->Init());
  return vm;
}

Status MicroVm::Init() {
  CONVERGE_ASSIGN_OR_RETURN(int kvm, kernel_.Open("/dev/kvm", O_RDWR));
  kvm_fd_ = KernelFd(kernel_, kvm);
  CONVERGE_ASSIGN_OR_RETURN(int version, KvmGetApiVersion(kernel_, kvm));
  if (version != kKvmApiVersion) {
    return NotSupportedError("KVM API version " + std::to_string(version) +
                             ", expected 12");
  }
  CONVERGE_ASSIGN_OR_RETURN(int vm, KvmCreateVm(kernel_, kvm));
  vm_fd_ = KernelFd(kernel_, vm);

  if (options_.dirty_ring_bytes != 0) {
    // Prefer the variant with acquire/release semantics on the entries.
    uint32_t cap = KVM_CAP_DIRTY_LOG_RING_ACQ_REL;
    CONVERGE_ASSIGN_OR_RETURN(int max_bytes,
                              KvmCheckExtension(kernel_, vm, cap));
    if (max_bytes == 0) {
      cap = KVM_CAP_DIRTY_LOG_RING;
      CONVERGE_ASSIGN_OR_RETURN(max_bytes, KvmCheckExtension(kernel_, vm, cap));
    }
    if (max_bytes == 0) {
      return NotSupportedError("KVM dirty ring: capability absent");
    }
    if (options_.dirty_ring_bytes > static_cast<uint32_t>(max_bytes)) {
      return InvalidArgumentError(
          "MicroVm dirty_ring_bytes " +
          std::to_string(options_.dirty_ring_bytes) + " exceeds KVM's " +
          std::to_string(max_bytes));
    }
    CONVERGE_RETURN_IF_ERROR(
        KvmEnableCap(kernel_, vm, cap, options_.dirty_ring_bytes));
  }

  void* ram = ::mmap(nullptr, options_.ram_bytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (ram == MAP_FAILED) {
    return ErrnoStatus(errno, "mmap " + std::to_string(options_.ram_bytes) +
                                  " bytes of guest RAM");
  }
  ram_ = static_cast<uint8_t*>(ram);
  if (options_.huge_pages) {
    // Advice only: without THP the guest runs on 4 KiB pages.
    (void)::madvise(ram_, options_.ram_bytes, MADV_HUGEPAGE);
  }
  const size_t code_bytes =
      static_cast<size_t>(converge_guest_code_end - converge_guest_code_start);
  static_assert(CONVERGE_GUEST_CODE_GPA + CONVERGE_GUEST_CODE_MAX_BYTES <=
                CONVERGE_GUEST_LIST_GPA);
  assert(code_bytes <= CONVERGE_GUEST_CODE_MAX_BYTES);
  memcpy(ram_ + CONVERGE_GUEST_CODE_GPA, converge_guest_code_start,
         code_bytes);
  if (options_.fill_ram) {
    const uint64_t first = kFirstWorkloadPage * kPageBytes;
    CONVERGE_ASSIGN_OR_RETURN(
        fill_counts_,
        FillGuestRam(std::span<uint8_t>(ram_ + first,
                                        options_.ram_bytes - first),
                     kFirstWorkloadPage, options_.fill));
  }
  CONVERGE_RETURN_IF_ERROR(CreateMemslots());
  return CreateVcpu();
}

Status MicroVm::CreateMemslots() {
  const uint64_t slot_bytes =
      options_.slot_bytes == 0 ? options_.ram_bytes : options_.slot_bytes;
  for (uint64_t gpa = 0; gpa < options_.ram_bytes; gpa += slot_bytes) {
    KvmMemslot slot;
    slot.slot = static_cast<uint32_t>(slots_.size());
    slot.gpa = gpa;
    slot.bytes = std::min(slot_bytes, options_.ram_bytes - gpa);
    slot.host = ram_ + gpa;
    CONVERGE_RETURN_IF_ERROR(KvmSetMemslot(kernel_, vm_fd_.get(), slot));
    slots_.push_back(slot);
  }
  return OkStatus();
}

Status MicroVm::CreateVcpu() {
  CONVERGE_ASSIGN_OR_RETURN(int vcpu, KvmCreateVcpu(kernel_, vm_fd_.get(), 0));
  vcpu_fd_ = KernelFd(kernel_, vcpu);
  CONVERGE_ASSIGN_OR_RETURN(int run_bytes,
                            KvmGetVcpuMmapSize(kernel_, kvm_fd_.get()));
  CONVERGE_ASSIGN_OR_RETURN(
      void* run, kernel_.Mmap(static_cast<size_t>(run_bytes),
                              PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0));
  run_ = static_cast<kvm_run*>(run);
  run_bytes_ = static_cast<size_t>(run_bytes);
  if (options_.dirty_ring_bytes != 0) {
    Result<void*> ring = kernel_.Mmap(
        options_.dirty_ring_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu,
        static_cast<off_t>(KVM_DIRTY_LOG_PAGE_OFFSET * kPageBytes));
    if (!ring.ok()) return ring.status().WithContext("mmap KVM dirty ring");
    rings_.push_back(KvmDirtyRing{
        vcpu, static_cast<kvm_dirty_gfn*>(*ring),
        static_cast<uint32_t>(options_.dirty_ring_bytes /
                              sizeof(kvm_dirty_gfn))});
  }

  kvm_sregs sregs{};
  CONVERGE_RETURN_IF_ERROR(KvmGetSregs(kernel_, vcpu, sregs));
  // Flat 4 GiB segments, protected mode, no paging; the hidden segment
  // state is loaded directly, so the guest needs no GDT.
  kvm_segment code{};
  code.base = 0;
  code.limit = 0xffffffff;
  code.selector = 0x8;
  code.type = 0xb;  // execute/read, accessed
  code.present = 1;
  code.db = 1;
  code.s = 1;
  code.g = 1;
  kvm_segment data = code;
  data.selector = 0x10;
  data.type = 0x3;  // read/write, accessed
  sregs.cs = code;
  sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
  constexpr uint64_t kCr0Pe = 1, kCr0Et = 1u << 4, kCr0Nw = 1u << 29,
                     kCr0Cd = 1u << 30;
  sregs.cr0 = (sregs.cr0 | kCr0Pe | kCr0Et) & ~(kCr0Nw | kCr0Cd);
  sregs.cr4 = 0;
  sregs.efer = 0;
  CONVERGE_RETURN_IF_ERROR(KvmSetSregs(kernel_, vcpu, sregs));
  kvm_regs regs{};
  regs.rip = CONVERGE_GUEST_CODE_GPA;
  regs.rflags = 0x2;
  CONVERGE_RETURN_IF_ERROR(KvmSetRegs(kernel_, vcpu, regs));
  CONVERGE_ASSIGN_OR_RETURN(tsc_khz_, KvmGetTscKhz(kernel_, vcpu));
  return OkStatus();
}

MicroVm::~MicroVm() {
  StopThread();
  for (const KvmDirtyRing& ring : rings_) {
    (void)kernel_.Munmap(ring.gfns, options_.dirty_ring_bytes);
  }
  if (run_ != nullptr) (void)kernel_.Munmap(run_, run_bytes_);
  // The vCPU holds a reference on the VM: close it first, then the VM, so
  // KVM lets go of guest RAM before it is unmapped.
  (void)vcpu_fd_.Reset();
  (void)vm_fd_.Reset();
  (void)kvm_fd_.Reset();
  if (ram_ != nullptr) ::munmap(ram_, options_.ram_bytes);
}

std::atomic_ref<uint32_t> MicroVm::MailboxWord(uint32_t offset) const {
  return std::atomic_ref<uint32_t>(*reinterpret_cast<uint32_t*>(
      ram_ + CONVERGE_GUEST_MAILBOX_GPA + offset));
}

bool MicroVm::CommandPending() const {
  return MailboxWord(CONVERGE_MB_CMD_SEQ).load(std::memory_order_acquire) !=
         MailboxWord(CONVERGE_MB_ACK_SEQ).load(std::memory_order_acquire);
}

uint64_t MicroVm::pages_written() const {
  // The guest bumps the low word, then carries into the high one: read
  // high, low, high and retry if a carry landed in between.
  for (;;) {
    const uint32_t hi =
        MailboxWord(CONVERGE_MB_PAGES_WRITTEN_HI).load(std::memory_order_acquire);
    const uint32_t lo =
        MailboxWord(CONVERGE_MB_PAGES_WRITTEN_LO).load(std::memory_order_acquire);
    if (MailboxWord(CONVERGE_MB_PAGES_WRITTEN_HI)
            .load(std::memory_order_acquire) == hi) {
      return (uint64_t{hi} << 32) | lo;
    }
  }
}

Status MicroVm::CheckRegion(uint64_t first_page, uint64_t num_pages) const {
  if (first_page < kFirstWorkloadPage || num_pages == 0 ||
      first_page > this->num_pages() ||
      num_pages > this->num_pages() - first_page) {
    return InvalidArgumentError(
        "MicroVm workload region " + Pages(first_page, num_pages) +
        " must be non-empty and lie in workload pages " +
        Pages(kFirstWorkloadPage, this->num_pages() - kFirstWorkloadPage));
  }
  return OkStatus();
}

Status MicroVm::SetWorkload(const WorkloadSpec& spec) {
  const uint64_t first = spec.first_page;
  const uint64_t count = spec.num_pages != 0 || first > num_pages()
                             ? spec.num_pages
                             : num_pages() - first;
  CONVERGE_RETURN_IF_ERROR(CheckRegion(first, count));
  if (spec.kind == GuestWorkload::kHotCold && count < 2) {
    return InvalidArgumentError("MicroVm hot/cold workload needs at least 2 "
                                "pages, got " + std::to_string(count));
  }
  if (spec.kind == GuestWorkload::kBursts && spec.burst_pages == 0) {
    return InvalidArgumentError("MicroVm burst_pages must be at least 1");
  }
  const uint64_t tsc_hz = uint64_t{tsc_khz_} * 1000;
  uint64_t ticks_per_page = 0;
  if (spec.rate_pages_per_s != 0) {
    ticks_per_page = std::max<uint64_t>(1, tsc_hz / spec.rate_pages_per_s);
    if (ticks_per_page > UINT32_MAX) {
      return InvalidArgumentError(
          "MicroVm rate_pages_per_s " + std::to_string(spec.rate_pages_per_s) +
          " is below the slowest rate the guest paces (" +
          std::to_string(tsc_hz / UINT32_MAX + 1) + " pages/s)");
    }
  }
  const uint64_t pause_ticks = uint64_t{spec.burst_pause_us} * tsc_khz_ / 1000;
  if (pause_ticks > UINT32_MAX) {
    return InvalidArgumentError("MicroVm burst_pause_us " +
                                std::to_string(spec.burst_pause_us) +
                                " exceeds 2^32 TSC ticks");
  }
  const uint64_t hot = std::max<uint64_t>(1, count / 10);
  std::unique_lock lock(mu_);
  auto set = [&](uint32_t offset, uint64_t value) {
    MailboxWord(offset).store(static_cast<uint32_t>(value),
                              std::memory_order_relaxed);
  };
  set(CONVERGE_MB_REGION_FIRST, first);
  set(CONVERGE_MB_REGION_PAGES, count);
  set(CONVERGE_MB_TICKS_PER_PAGE, ticks_per_page);
  set(CONVERGE_MB_BURST_PAGES, spec.burst_pages);
  set(CONVERGE_MB_BURST_PAUSE_TICKS, pause_ticks);
  set(CONVERGE_MB_SEED, spec.seed == 0 ? kDefaultSeed : spec.seed);
  set(CONVERGE_MB_HOT_PAGES, hot);
  set(CONVERGE_MB_COLD_PAGES, count - hot);
  return PostCommand(static_cast<uint32_t>(spec.kind), lock);
}

bool MicroVm::RunningLocked() const {
  return thread_.joinable() && state_ != VcpuState::kStopped &&
         !pause_requested_;
}

bool MicroVm::WaitPolling(std::unique_lock<std::mutex>& lock,
                          const std::function<bool()>& done) {
  // The guest acknowledges through memory without exiting, so nothing
  // notifies: poll, waking early on the vCPU thread's notifications.
  constexpr auto kPoll = std::chrono::microseconds(100);
  const auto deadline = std::chrono::steady_clock::now() + kCommandTimeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    cv_.wait_for(lock, kPoll);
  }
  return true;
}

Status MicroVm::PostCommand(uint32_t mode, std::unique_lock<std::mutex>& lock) {
  MailboxWord(CONVERGE_MB_MODE).store(mode, std::memory_order_relaxed);
  const uint32_t seq = ++command_seq_;
  // Release: the guest that sees the new CMD_SEQ sees the fields above.
  MailboxWord(CONVERGE_MB_CMD_SEQ).store(seq, std::memory_order_release);
  cv_.notify_all();  // a halted guest waits on the vCPU thread
  if (!RunningLocked()) return OkStatus();
  const bool acked = WaitPolling(lock, [&] {
    return !RunningLocked() ||
           MailboxWord(CONVERGE_MB_ACK_SEQ).load(std::memory_order_acquire) ==
               seq;
  });
  if (!acked) {
    return UnavailableError("MicroVm guest did not take command " +
                            std::to_string(seq) + " within " +
                            std::to_string(kCommandTimeout.count()) + " ms");
  }
  return vcpu_status_;
}

Status MicroVm::RunOneShot(uint32_t mode) {
  std::unique_lock lock(mu_);
  if (!RunningLocked()) {
    return FailedPreconditionError(
        "MicroVm one-shot command needs a running vCPU");
  }
  const uint32_t done =
      MailboxWord(CONVERGE_MB_DONE_COUNT).load(std::memory_order_acquire);
  CONVERGE_RETURN_IF_ERROR(PostCommand(mode, lock));
  // The guest halts after the command; the vCPU thread signals each halt.
  const bool finished = WaitPolling(lock, [&] {
    return !RunningLocked() ||
           MailboxWord(CONVERGE_MB_DONE_COUNT)
                   .load(std::memory_order_acquire) != done;
  });
  if (!vcpu_status_.ok()) return vcpu_status_;
  if (!finished || !RunningLocked()) {
    return UnavailableError("MicroVm guest did not finish command " +
                            std::to_string(command_seq_) +
                            " (paused, stopped or timed out)");
  }
  return OkStatus();
}

Status MicroVm::WritePages(std::span<const uint64_t> pages) {
  if (pages.size() > kMaxPageList) {
    return InvalidArgumentError("MicroVm page list of " +
                                std::to_string(pages.size()) +
                                " pages exceeds " +
                                std::to_string(kMaxPageList));
  }
  auto* list = reinterpret_cast<uint32_t*>(ram_ + CONVERGE_GUEST_LIST_GPA);
  for (size_t i = 0; i < pages.size(); ++i) {
    CONVERGE_RETURN_IF_ERROR(CheckRegion(pages[i], 1).WithContext(
        "page list entry " + std::to_string(i)));
  }
  {
    std::lock_guard lock(mu_);
    for (size_t i = 0; i < pages.size(); ++i) {
      std::atomic_ref<uint32_t>(list[i]).store(
          static_cast<uint32_t>(pages[i]), std::memory_order_relaxed);
    }
    MailboxWord(CONVERGE_MB_LIST_COUNT)
        .store(static_cast<uint32_t>(pages.size()), std::memory_order_relaxed);
  }
  return RunOneShot(CONVERGE_GUEST_MODE_PAGE_LIST);
}

Status MicroVm::SweepOnce(uint64_t first_page, uint64_t num_pages) {
  CONVERGE_RETURN_IF_ERROR(CheckRegion(first_page, num_pages));
  {
    std::lock_guard lock(mu_);
    MailboxWord(CONVERGE_MB_REGION_FIRST)
        .store(static_cast<uint32_t>(first_page), std::memory_order_relaxed);
    MailboxWord(CONVERGE_MB_REGION_PAGES)
        .store(static_cast<uint32_t>(num_pages), std::memory_order_relaxed);
  }
  return RunOneShot(CONVERGE_GUEST_MODE_SWEEP_ONCE);
}

MicroVmStats MicroVm::stats() const {
  MicroVmStats s;
  s.kvm_runs = kvm_runs_.load(std::memory_order_relaxed);
  s.hlt_exits = hlt_exits_.load(std::memory_order_relaxed);
  s.interrupted_exits = interrupted_exits_.load(std::memory_order_relaxed);
  s.ring_full_exits = ring_full_exits_.load(std::memory_order_relaxed);
  s.run_ns = run_ns_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace converge
