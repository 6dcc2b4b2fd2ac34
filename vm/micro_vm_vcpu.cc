// MicroVm: the vCPU thread, pause and resume.

#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <string>

#include "vm/micro_vm.h"

namespace converge {
namespace {

// Kicks the vCPU thread out of KVM_RUN (EINTR).
constexpr int kKickSignal = SIGUSR1;

void IgnoreKick(int) {}

// Installs a no-op kKickSignal handler unless the process has its own; any
// handler makes the signal interrupt KVM_RUN instead of killing or being
// discarded.
void InstallKickHandler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction old {};
    sigaction(kKickSignal, nullptr, &old);
    if (old.sa_handler == SIG_DFL || old.sa_handler == SIG_IGN) {
      struct sigaction sa {};
      sa.sa_handler = IgnoreKick;
      sigemptyset(&sa.sa_mask);
      sa.sa_flags = 0;  // no SA_RESTART: KVM_RUN must return EINTR
      sigaction(kKickSignal, &sa, nullptr);
    }
  });
}

uint64_t NowNs() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

std::string Hex(uint64_t value) {
  char buf[24];
  snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(value));
  return buf;
}

std::string DescribeExit(const kvm_run& run) {
  switch (run.exit_reason) {
    case KVM_EXIT_SHUTDOWN:
      return "guest shut down (triple fault)";
    case KVM_EXIT_FAIL_ENTRY:
      return "VM entry failed, hardware reason " +
             Hex(run.fail_entry.hardware_entry_failure_reason);
    case KVM_EXIT_INTERNAL_ERROR:
      return "KVM internal error, suberror " +
             std::to_string(run.internal.suberror);
    case KVM_EXIT_MMIO:
      return "guest touched unbacked GPA " + Hex(run.mmio.phys_addr);
    case KVM_EXIT_IO:
      return "guest did port I/O on port " + std::to_string(run.io.port);
    default:
      return "unexpected exit reason " + std::to_string(run.exit_reason);
  }
}

}  // namespace

Status MicroVm::Start() {
  std::lock_guard lock(mu_);
  assert(!thread_.joinable() && "MicroVm::Start called twice");
  if (thread_.joinable()) return FailedPreconditionError("MicroVm started");
  InstallKickHandler();
  state_ = VcpuState::kRunning;
  thread_ = std::thread([this] { VcpuLoop(); });
  return OkStatus();
}

Status MicroVm::Pause() {
  std::unique_lock lock(mu_);
  pause_requested_ = true;
  if (!thread_.joinable()) return OkStatus();
  // immediate_exit stops a KVM_RUN that has not entered the guest yet; the
  // signal kicks one that has. Either way the vCPU thread then parks.
  run_->immediate_exit = 1;
  cv_.notify_all();
  pthread_kill(thread_.native_handle(), kKickSignal);
  cv_.wait(lock, [&] {
    return state_ == VcpuState::kPaused || state_ == VcpuState::kStopped;
  });
  return OkStatus();
}

Status MicroVm::Resume() {
  std::lock_guard lock(mu_);
  assert(thread_.joinable());
  if (!thread_.joinable()) {
    return FailedPreconditionError("MicroVm::Resume before Start");
  }
  // state_ stays kPaused until the vCPU thread wakes: a Pause() that comes
  // first finds it still parked, which is true.
  pause_requested_ = false;
  cv_.notify_all();
  return vcpu_status_;
}

bool MicroVm::paused() const {
  std::lock_guard lock(mu_);
  return pause_requested_;
}

Status MicroVm::vcpu_status() const {
  std::lock_guard lock(mu_);
  return vcpu_status_;
}

void MicroVm::SetDirtyRingFullHandler(std::function<Status()> handler) {
  std::lock_guard lock(mu_);
  assert(!thread_.joinable());
  ring_full_handler_ = std::move(handler);
}

Status MicroVm::WaitForPagesWritten(uint64_t count,
                                    std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (pages_written() < count) {
    Status s = vcpu_status();
    if (!s.ok()) return s;
    if (std::chrono::steady_clock::now() > deadline) {
      return UnavailableError("MicroVm wrote " +
                              std::to_string(pages_written()) + " of " +
                              std::to_string(count) + " pages in " +
                              std::to_string(timeout.count()) + " ms");
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return OkStatus();
}

void MicroVm::StopThread() {
  {
    std::lock_guard lock(mu_);
    if (!thread_.joinable()) return;
    stop_ = true;
    run_->immediate_exit = 1;
    cv_.notify_all();
    pthread_kill(thread_.native_handle(), kKickSignal);
  }
  thread_.join();
}

void MicroVm::Fail(Status status) {
  vcpu_status_ = status.WithContext("MicroVm vCPU 0");
  state_ = VcpuState::kStopped;
  cv_.notify_all();
}

void MicroVm::VcpuLoop() {
  std::unique_lock lock(mu_);
  for (;;) {
    if (stop_) break;
    if (pause_requested_) {
      state_ = VcpuState::kPaused;
      cv_.notify_all();
      cv_.wait(lock, [&] { return stop_ || !pause_requested_; });
      continue;
    }
    state_ = VcpuState::kRunning;
    run_->immediate_exit = 0;
    lock.unlock();
    const uint64_t start_ns = NowNs();
    Status s = KvmRun(kernel_, vcpu_fd_.get());
    run_ns_.fetch_add(NowNs() - start_ns, std::memory_order_relaxed);
    kvm_runs_.fetch_add(1, std::memory_order_relaxed);
    lock.lock();
    if (!s.ok()) {
      if (s.code() == StatusCode::kInterrupted) {
        interrupted_exits_.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      Fail(s);
      return;
    }
    if (!HandleExit(lock)) return;
  }
  state_ = VcpuState::kStopped;
  cv_.notify_all();
}

bool MicroVm::HandleExit(std::unique_lock<std::mutex>& lock) {
  if (run_->exit_reason != KVM_EXIT_DIRTY_RING_FULL) ring_full_in_a_row_ = 0;
  switch (run_->exit_reason) {
    case KVM_EXIT_HLT:
      // The guest waits for a command: sleep until there is one.
      hlt_exits_.fetch_add(1, std::memory_order_relaxed);
      cv_.notify_all();
      cv_.wait(lock, [&] {
        return stop_ || pause_requested_ || CommandPending();
      });
      return true;
    case KVM_EXIT_INTR:
      interrupted_exits_.fetch_add(1, std::memory_order_relaxed);
      return true;
    case KVM_EXIT_DIRTY_RING_FULL: {
      ring_full_exits_.fetch_add(1, std::memory_order_relaxed);
      // A ring that stays full however often it is harvested: KVM's reset
      // index no longer moves (an overrun the handler could not repair).
      // Stop with an error instead of spinning.
      if (++ring_full_in_a_row_ > kMaxRingFullInARow) {
        Fail(ResourceExhaustedError(
            "KVM reports the dirty ring full after " +
            std::to_string(kMaxRingFullInARow) +
            " harvests in a row: the ring overran and its reset index is "
            "stuck"));
        return false;
      }
      if (!ring_full_handler_) {
        Fail(FailedPreconditionError(
            "dirty ring full and no handler to harvest it"));
        return false;
      }
      lock.unlock();
      Status s = ring_full_handler_();
      lock.lock();
      if (!s.ok()) {
        Fail(s.WithContext("harvesting a full dirty ring"));
        return false;
      }
      return true;
    }
    default:
      Fail(InternalError(DescribeExit(*run_)));
      return false;
  }
}

}  // namespace converge
