// Kernel: the one seam through which converge opens, closes, ioctls, mmaps,
// reads and writes VFIO, iommufd and KVM objects (LevelDB's Env, for
// kernel objects).
//
// Kernel::Default() calls the real kernel. sim/ has an emulated kernel that
// implements the VFIO and IOMMU semantics of the uAPI, and a fault-injecting
// wrapper that fails chosen calls. The code above the seam is the same for
// all three.
//
// The public methods are non-virtual: they retry EINTR (unless told not to)
// around the virtual Do*() primitives, so an injected EINTR exercises the
// same retry path a signal would. Do*() make exactly one attempt and return
// errors through ErrnoStatus().
//
// Thread-safety: Default() is safe to use from any thread. Implementations
// document their own contract; the emulated kernel is thread-safe.

#ifndef CONVERGE_IOMMU_KERNEL_H_
#define CONVERGE_IOMMU_KERNEL_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "base/status.h"

namespace converge {

enum class EintrPolicy : uint8_t {
  kRetry,   // loop until the call completes (almost every call)
  kReturn,  // return kInterrupted (KVM_RUN: a signal is how a vCPU pauses)
};

class Kernel {
 public:
  Kernel() = default;
  Kernel(const Kernel&) = delete;
  Kernel& operator=(const Kernel&) = delete;
  virtual ~Kernel() = default;

  // The real kernel. Never destroyed.
  static Kernel& Default();

  // Returns a new file descriptor (O_CLOEXEC is added).
  Result<int> Open(const std::string& path, int flags) {
    return RetryOnEintr([&] { return DoOpen(path, flags); });
  }
  // Closes fd. EINTR is not retried (the fd is gone either way on Linux).
  Status Close(int fd) { return DoClose(fd); }
  // Returns the ioctl's non-negative result.
  Result<int> Ioctl(int fd, unsigned long request, void* arg,
                    EintrPolicy eintr = EintrPolicy::kRetry) {
    if (eintr == EintrPolicy::kReturn) return DoIoctl(fd, request, arg);
    return RetryOnEintr([&] { return DoIoctl(fd, request, arg); });
  }
  // Maps length bytes of fd at offset (MAP_SHARED semantics as given).
  Result<void*> Mmap(size_t length, int prot, int flags, int fd,
                     off_t offset) {
    return DoMmap(length, prot, flags, fd, offset);
  }
  Status Munmap(void* addr, size_t length) { return DoMunmap(addr, length); }
  // Returns bytes read (0 = end of file, or "nothing now" on a PRE_COPY
  // data_fd). Short reads are normal.
  Result<size_t> Read(int fd, void* buf, size_t length) {
    return RetryOnEintr([&] { return DoRead(fd, buf, length); });
  }
  // Returns bytes written; short writes are normal.
  Result<size_t> Write(int fd, const void* buf, size_t length) {
    return RetryOnEintr([&] { return DoWrite(fd, buf, length); });
  }

 protected:
  virtual Result<int> DoOpen(const std::string& path, int flags) = 0;
  virtual Status DoClose(int fd) = 0;
  virtual Result<int> DoIoctl(int fd, unsigned long request, void* arg) = 0;
  virtual Result<void*> DoMmap(size_t length, int prot, int flags, int fd,
                               off_t offset) = 0;
  virtual Status DoMunmap(void* addr, size_t length) = 0;
  virtual Result<size_t> DoRead(int fd, void* buf, size_t length) = 0;
  virtual Result<size_t> DoWrite(int fd, const void* buf, size_t length) = 0;
};

// A Kernel that forwards every call to another one. Wrappers (fault
// injection, tracing) derive from it and override what they change.
class ForwardingKernel : public Kernel {
 public:
  explicit ForwardingKernel(Kernel& base) : base_(base) {}
  Kernel& base() { return base_; }

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
  Kernel& base_;
};

// An owned file descriptor closed through its Kernel on destruction.
class KernelFd {
 public:
  KernelFd() = default;
  KernelFd(Kernel& kernel, int fd) : kernel_(&kernel), fd_(fd) {}
  KernelFd(KernelFd&& other) noexcept { *this = std::move(other); }
  KernelFd& operator=(KernelFd&& other) noexcept;
  KernelFd(const KernelFd&) = delete;
  KernelFd& operator=(const KernelFd&) = delete;
  ~KernelFd() { (void)Reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Closes the fd now; returns the close error, if any.
  Status Reset();
  // Gives up ownership without closing.
  int Release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  Kernel* kernel_ = nullptr;
  int fd_ = -1;
};

}  // namespace converge

#endif  // CONVERGE_IOMMU_KERNEL_H_
