#include "sim/fault_kernel.h"

#include <algorithm>
#include <cstdio>
#include <string>

namespace converge::sim {

std::string_view KernelOpName(KernelOp op) {
  switch (op) {
    case KernelOp::kOpen: return "open";
    case KernelOp::kClose: return "close";
    case KernelOp::kIoctl: return "ioctl";
    case KernelOp::kMmap: return "mmap";
    case KernelOp::kMunmap: return "munmap";
    case KernelOp::kRead: return "read";
    case KernelOp::kWrite: return "write";
  }
  return "unknown";
}

FaultRule FaultRule::FailNth(KernelOp op, uint64_t n, int error) {
  return FailCalls(op, n, n, error);
}

FaultRule FaultRule::FailFrom(KernelOp op, uint64_t n, int error) {
  return FailCalls(op, n, UINT64_MAX, error);
}

FaultRule FaultRule::FailCalls(KernelOp op, uint64_t first, uint64_t last,
                               int error) {
  FaultRule r;
  r.op = op;
  r.first_call = first;
  r.last_call = last;
  r.error = error;
  return r;
}

FaultRule FaultRule::EintrStorm(KernelOp op, uint64_t times) {
  return FailCalls(op, 1, times, EINTR);
}

FaultRule FaultRule::ShortIo(KernelOp op, size_t cap_bytes) {
  FaultRule r = FailCalls(op, 1, UINT64_MAX, 0);
  r.cap_bytes = cap_bytes;
  return r;
}

int FaultKernel::AddRule(const FaultRule& rule) {
  std::lock_guard<std::mutex> lock(mu_);
  int id = next_id_++;
  rules_.push_back(Armed{id, rule, 0});
  return id;
}

void FaultKernel::RemoveRule(int id) {
  std::lock_guard<std::mutex> lock(mu_);
  rules_.erase(std::remove_if(rules_.begin(), rules_.end(),
                              [&](const Armed& a) { return a.id == id; }),
               rules_.end());
}

void FaultKernel::ClearRules() {
  std::lock_guard<std::mutex> lock(mu_);
  rules_.clear();
}

uint64_t FaultKernel::calls(KernelOp op) const {
  std::lock_guard<std::mutex> lock(mu_);
  return calls_[static_cast<size_t>(op)];
}

uint64_t FaultKernel::ioctl_calls(unsigned long request) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = ioctl_calls_.find(request);
  return it == ioctl_calls_.end() ? 0 : it->second;
}

uint64_t FaultKernel::injected() const {
  std::lock_guard<std::mutex> lock(mu_);
  return injected_;
}

void FaultKernel::ResetCounters() {
  std::lock_guard<std::mutex> lock(mu_);
  calls_.fill(0);
  ioctl_calls_.clear();
  injected_ = 0;
}

FaultKernel::Verdict FaultKernel::Check(KernelOp op, int fd,
                                        unsigned long request) {
  std::lock_guard<std::mutex> lock(mu_);
  ++calls_[static_cast<size_t>(op)];
  if (op == KernelOp::kIoctl) ++ioctl_calls_[request];
  Verdict verdict;
  bool fired = false;
  for (Armed& a : rules_) {
    const FaultRule& r = a.rule;
    if (r.op != op) continue;
    if (r.fd.has_value() && *r.fd != fd) continue;
    if (r.request.has_value() &&
        (op != KernelOp::kIoctl || *r.request != request)) {
      continue;
    }
    ++a.matched;
    if (fired || a.matched < r.first_call || a.matched > r.last_call) continue;
    fired = true;
    verdict.error = r.error;
    verdict.cap_bytes = r.cap_bytes;
  }
  if (verdict.error != 0 || verdict.cap_bytes != SIZE_MAX) ++injected_;
  return verdict;
}

namespace {

std::string Describe(KernelOp op, int fd) {
  return "injected fault: " + std::string(KernelOpName(op)) + " fd " +
         std::to_string(fd);
}

}  // namespace

Result<int> FaultKernel::DoOpen(const std::string& path, int flags) {
  Verdict v = Check(KernelOp::kOpen, -1, 0);
  if (v.error != 0) return ErrnoStatus(v.error, "injected fault: open " + path);
  return ForwardingKernel::DoOpen(path, flags);
}

Status FaultKernel::DoClose(int fd) {
  Verdict v = Check(KernelOp::kClose, fd, 0);
  if (v.error != 0) {
    // The fd is released either way, as on Linux.
    (void)ForwardingKernel::DoClose(fd);
    return ErrnoStatus(v.error, Describe(KernelOp::kClose, fd));
  }
  return ForwardingKernel::DoClose(fd);
}

Result<int> FaultKernel::DoIoctl(int fd, unsigned long request, void* arg) {
  Verdict v = Check(KernelOp::kIoctl, fd, request);
  if (v.error != 0) {
    char buf[96];
    snprintf(buf, sizeof buf, "injected fault: ioctl 0x%lx on fd %d",
             request, fd);
    return ErrnoStatus(v.error, buf);
  }
  return ForwardingKernel::DoIoctl(fd, request, arg);
}

Result<void*> FaultKernel::DoMmap(size_t length, int prot, int flags, int fd,
                                  off_t offset) {
  Verdict v = Check(KernelOp::kMmap, fd, 0);
  if (v.error != 0) return ErrnoStatus(v.error, Describe(KernelOp::kMmap, fd));
  return ForwardingKernel::DoMmap(length, prot, flags, fd, offset);
}

Status FaultKernel::DoMunmap(void* addr, size_t length) {
  Verdict v = Check(KernelOp::kMunmap, -1, 0);
  if (v.error != 0) return ErrnoStatus(v.error, "injected fault: munmap");
  return ForwardingKernel::DoMunmap(addr, length);
}

Result<size_t> FaultKernel::DoRead(int fd, void* buf, size_t length) {
  Verdict v = Check(KernelOp::kRead, fd, 0);
  if (v.error != 0) return ErrnoStatus(v.error, Describe(KernelOp::kRead, fd));
  return ForwardingKernel::DoRead(fd, buf, std::min(length, v.cap_bytes));
}

Result<size_t> FaultKernel::DoWrite(int fd, const void* buf, size_t length) {
  Verdict v = Check(KernelOp::kWrite, fd, 0);
  if (v.error != 0) {
    return ErrnoStatus(v.error, Describe(KernelOp::kWrite, fd));
  }
  return ForwardingKernel::DoWrite(fd, buf, std::min(length, v.cap_bytes));
}

}  // namespace converge::sim
