#include "iommu/kernel.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

namespace converge {
namespace {

// The real kernel: each primitive is one system call.
class PosixKernel final : public Kernel {
 protected:
  Result<int> DoOpen(const std::string& path, int flags) override {
    int fd = ::open(path.c_str(), flags | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus(errno, "open " + path);
    return fd;
  }
  Status DoClose(int fd) override {
    if (::close(fd) != 0 && errno != EINTR) {
      return ErrnoStatus(errno, "close fd " + std::to_string(fd));
    }
    return OkStatus();
  }
  Result<int> DoIoctl(int fd, unsigned long request, void* arg) override {
    int r = ::ioctl(fd, request, arg);
    if (r < 0) return ErrnoStatus(errno, IoctlName(fd, request));
    return r;
  }
  Result<void*> DoMmap(size_t length, int prot, int flags, int fd,
                       off_t offset) override {
    void* p = ::mmap(nullptr, length, prot, flags, fd, offset);
    if (p == MAP_FAILED) {
      return ErrnoStatus(errno, "mmap fd " + std::to_string(fd));
    }
    return p;
  }
  Status DoMunmap(void* addr, size_t length) override {
    if (::munmap(addr, length) != 0) return ErrnoStatus(errno, "munmap");
    return OkStatus();
  }
  Result<size_t> DoRead(int fd, void* buf, size_t length) override {
    ssize_t n = ::read(fd, buf, length);
    if (n < 0) return ErrnoStatus(errno, "read fd " + std::to_string(fd));
    return static_cast<size_t>(n);
  }
  Result<size_t> DoWrite(int fd, const void* buf, size_t length) override {
    ssize_t n = ::write(fd, buf, length);
    if (n < 0) return ErrnoStatus(errno, "write fd " + std::to_string(fd));
    return static_cast<size_t>(n);
  }

 private:
  static std::string IoctlName(int fd, unsigned long request) {
    char buf[64];
    snprintf(buf, sizeof buf, "ioctl 0x%lx on fd %d", request, fd);
    return buf;
  }
};

}  // namespace

Kernel& Kernel::Default() {
  static PosixKernel* kernel = new PosixKernel;
  return *kernel;
}

Result<int> ForwardingKernel::DoOpen(const std::string& path, int flags) {
  return base_.Open(path, flags);
}
Status ForwardingKernel::DoClose(int fd) { return base_.Close(fd); }
Result<int> ForwardingKernel::DoIoctl(int fd, unsigned long request,
                                      void* arg) {
  return base_.Ioctl(fd, request, arg, EintrPolicy::kReturn);
}
Result<void*> ForwardingKernel::DoMmap(size_t length, int prot, int flags,
                                       int fd, off_t offset) {
  return base_.Mmap(length, prot, flags, fd, offset);
}
Status ForwardingKernel::DoMunmap(void* addr, size_t length) {
  return base_.Munmap(addr, length);
}
Result<size_t> ForwardingKernel::DoRead(int fd, void* buf, size_t length) {
  return base_.Read(fd, buf, length);
}
Result<size_t> ForwardingKernel::DoWrite(int fd, const void* buf,
                                         size_t length) {
  return base_.Write(fd, buf, length);
}

KernelFd& KernelFd::operator=(KernelFd&& other) noexcept {
  if (this != &other) {
    (void)Reset();
    kernel_ = other.kernel_;
    fd_ = other.Release();
  }
  return *this;
}

Status KernelFd::Reset() {
  if (fd_ < 0) return OkStatus();
  Status s = kernel_->Close(fd_);
  fd_ = -1;
  return s;
}

}  // namespace converge
