// FaultKernel: a Kernel that forwards to another one and injects failures
// chosen by rules (LevelDB's ErrorEnv, for kernel objects): fail the Nth
// matching call, every call from N on, or calls N..M with an errno; EINTR
// storms (the seam's public methods retry them, so each retry is one more
// matching call); short reads and writes. It also counts calls per op and
// per ioctl request.
//
// Rules are checked in the order they were added; every rule that matches
// a call counts it, and the first rule whose window covers its count fires.
//
// Thread-safety: all methods are safe to call concurrently. The lock is not
// held while the call is forwarded.

#ifndef CONVERGE_SIM_FAULT_KERNEL_H_
#define CONVERGE_SIM_FAULT_KERNEL_H_

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string_view>
#include <vector>

#include "iommu/kernel.h"

namespace converge::sim {

enum class KernelOp : uint8_t {
  kOpen,
  kClose,
  kIoctl,
  kMmap,
  kMunmap,
  kRead,
  kWrite,
};
inline constexpr size_t kNumKernelOps = 7;
std::string_view KernelOpName(KernelOp op);

struct FaultRule {
  KernelOp op = KernelOp::kIoctl;
  std::optional<unsigned long> request;  // ioctl request to match; any if unset
  std::optional<int> fd;                 // fd to match; any if unset
  // Matching calls first..last (1-based, inclusive) are affected.
  uint64_t first_call = 1;
  uint64_t last_call = 1;
  // errno the affected calls fail with; 0 = do not fail.
  int error = EIO;
  // read/write only: affected calls pass at most this many bytes.
  size_t cap_bytes = SIZE_MAX;

  // Fails the nth matching call of op.
  static FaultRule FailNth(KernelOp op, uint64_t n, int error);
  // Fails every matching call of op from the nth on.
  static FaultRule FailFrom(KernelOp op, uint64_t n, int error);
  // Fails matching calls first..last of op.
  static FaultRule FailCalls(KernelOp op, uint64_t first, uint64_t last,
                             int error);
  // The first `times` matching calls of op fail with EINTR.
  static FaultRule EintrStorm(KernelOp op, uint64_t times);
  // Every read (or write) passes at most cap_bytes bytes.
  static FaultRule ShortIo(KernelOp op, size_t cap_bytes);

  // Narrows the rule to one ioctl request / one fd.
  FaultRule& OnRequest(unsigned long r) {
    request = r;
    return *this;
  }
  FaultRule& OnFd(int f) {
    fd = f;
    return *this;
  }
};

class FaultKernel final : public ForwardingKernel {
 public:
  explicit FaultKernel(Kernel& base) : ForwardingKernel(base) {}

  // Adds a rule; returns its id for RemoveRule().
  int AddRule(const FaultRule& rule);
  void RemoveRule(int id);
  void ClearRules();

  // Calls seen (attempts: each EINTR retry counts), per op and per ioctl
  // request, and how many were failed or shortened.
  uint64_t calls(KernelOp op) const;
  uint64_t ioctl_calls(unsigned long request) const;
  uint64_t injected() const;
  void ResetCounters();

 protected:
  Result<int> DoOpen(const std::string& path, int flags) override;
  Status DoClose(int fd) override;
  Result<int> DoIoctl(int fd, unsigned long request, void* arg) override;
  Result<void*> DoMmap(size_t length, int prot, int flags, int fd,
                       off_t offset) override;
  Status DoMunmap(void* addr, size_t length) override;
  Result<size_t> DoRead(int fd, void* buf, size_t length) override;
  Result<size_t> DoWrite(int fd, const void* buf, size_t length) override;

 private:
  struct Armed {
    int id;
    FaultRule rule;
    uint64_t matched = 0;
  };
  // What the rules decided for one call.
  struct Verdict {
    int error = 0;
    size_t cap_bytes = SIZE_MAX;
  };

  // Counts the call and returns the first firing rule's verdict.
  Verdict Check(KernelOp op, int fd, unsigned long request);

  mutable std::mutex mu_;
  int next_id_ = 1;
  std::vector<Armed> rules_;
  std::array<uint64_t, kNumKernelOps> calls_{};
  std::map<unsigned long, uint64_t> ioctl_calls_;
  uint64_t injected_ = 0;
};

}  // namespace converge::sim

#endif  // CONVERGE_SIM_FAULT_KERNEL_H_
