#include "sim/emulated_kernel.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstdlib>
#include <utility>

namespace converge::sim {

EmulatedKernel::EmulatedKernel() : real_(Kernel::Default()) {}

EmulatedKernel::~EmulatedKernel() {
  std::map<int, std::shared_ptr<EmulatedObject>> objects;
  {
    std::lock_guard<std::mutex> lock(mu_);
    objects.swap(objects_);
  }
  for (const auto& [fd, obj] : objects) ::close(fd);
  // objects (and any device threads they own) are released here, after
  // their fds are closed, so a reader blocked on a data_fd sees the end.
}

int EmulatedKernel::Install(std::shared_ptr<EmulatedObject> obj) {
  assert(obj != nullptr);
  int fd = ::eventfd(0, EFD_CLOEXEC);
  // eventfd fails only when the process is out of fds or memory, which the
  // emulated kernel cannot report through Install(); that is a broken test
  // environment, not an emulated error.
  if (fd < 0) std::abort();
  InstallAt(fd, std::move(obj));
  return fd;
}

void EmulatedKernel::InstallAt(int fd, std::shared_ptr<EmulatedObject> obj) {
  assert(fd >= 0);
  assert(obj != nullptr);
  std::lock_guard<std::mutex> lock(mu_);
  bool inserted = objects_.emplace(fd, std::move(obj)).second;
  assert(inserted && "fd already registered");
  (void)inserted;
}

void EmulatedKernel::AddPath(
    std::string path,
    std::function<std::shared_ptr<EmulatedObject>()> factory) {
  assert(factory != nullptr);
  std::lock_guard<std::mutex> lock(mu_);
  paths_[std::move(path)] = std::move(factory);
}

std::shared_ptr<EmulatedObject> EmulatedKernel::Lookup(int fd) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = objects_.find(fd);
  return it == objects_.end() ? nullptr : it->second;
}

size_t EmulatedKernel::num_installed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return objects_.size();
}

void EmulatedKernel::AddDmaObserver(DmaObserver* observer) {
  assert(observer != nullptr);
  std::lock_guard<std::mutex> lock(observers_mu_);
  observers_.push_back(observer);
}

void EmulatedKernel::RemoveDmaObserver(DmaObserver* observer) {
  std::lock_guard<std::mutex> lock(observers_mu_);
  observers_.erase(std::remove(observers_.begin(), observers_.end(), observer),
                   observers_.end());
}

void EmulatedKernel::NotifyDma(uint64_t iova, uint64_t length_bytes) {
  std::lock_guard<std::mutex> lock(observers_mu_);
  for (DmaObserver* observer : observers_) {
    observer->RecordDma(iova, length_bytes);
  }
}

Result<int> EmulatedKernel::DoOpen(const std::string& path, int flags) {
  std::function<std::shared_ptr<EmulatedObject>()> factory;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = paths_.find(path);
    if (it != paths_.end()) factory = it->second;
  }
  if (!factory) return real_.Open(path, flags);
  std::shared_ptr<EmulatedObject> obj = factory();
  if (obj == nullptr) return ErrnoStatus(ENODEV, "open " + path);
  return Install(std::move(obj));
}

Status EmulatedKernel::DoClose(int fd) {
  std::shared_ptr<EmulatedObject> obj;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = objects_.find(fd);
    if (it != objects_.end()) {
      obj = std::move(it->second);
      objects_.erase(it);
    }
  }
  // The real fd is closed before the object is released, so a device
  // thread writing into a pipe whose read end this was sees EPIPE.
  Status s = real_.Close(fd);
  obj.reset();
  return s;
}

Result<int> EmulatedKernel::DoIoctl(int fd, unsigned long request,
                                    void* arg) {
  std::shared_ptr<EmulatedObject> obj = Lookup(fd);
  if (obj == nullptr) {
    return real_.Ioctl(fd, request, arg, EintrPolicy::kReturn);
  }
  return obj->Ioctl(request, arg);
}

Result<void*> EmulatedKernel::DoMmap(size_t length, int prot, int flags,
                                     int fd, off_t offset) {
  return real_.Mmap(length, prot, flags, fd, offset);
}

Status EmulatedKernel::DoMunmap(void* addr, size_t length) {
  return real_.Munmap(addr, length);
}

Result<size_t> EmulatedKernel::DoRead(int fd, void* buf, size_t length) {
  return real_.Read(fd, buf, length);
}

Result<size_t> EmulatedKernel::DoWrite(int fd, const void* buf,
                                       size_t length) {
  return real_.Write(fd, buf, length);
}

}  // namespace converge::sim
