// EmulatedKernel: a Kernel that implements VFIO and IOMMU objects in user
// space, for tests and the harness (LevelDB's in-memory Env, for kernel
// objects).
//
// Every emulated object sits behind a real, unique file descriptor (an
// eventfd), so its number never collides with a real fd and closing it is
// always safe. Paths registered with AddPath() open emulated objects; any
// other path, and every fd the emulated kernel does not know, goes to the
// real kernel, so io_uring rings, pipes and /dev/kvm keep working through
// the same seam. Read/Write/Mmap/Munmap always go to the real kernel: the
// data_fds of emulated devices are real pipes.
//
// Thread-safety: all methods are safe to call concurrently. A mutex guards
// the tables; objects do their own locking, and their Ioctl() runs without
// the kernel's lock held.

#ifndef CONVERGE_SIM_EMULATED_KERNEL_H_
#define CONVERGE_SIM_EMULATED_KERNEL_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/status.h"
#include "iommu/kernel.h"

namespace converge::sim {

// An object behind a file descriptor the emulated kernel handed out.
class EmulatedObject {
 public:
  virtual ~EmulatedObject() = default;
  // One ioctl; returns >= 0, or an error made with ErrnoStatus(errno, what).
  virtual Result<int> Ioctl(unsigned long request, void* arg) = 0;
};

// Something that records device DMA writes (an IOMMU domain's dirty bits).
class DmaObserver {
 public:
  virtual ~DmaObserver() = default;
  virtual void RecordDma(uint64_t iova, uint64_t length_bytes) = 0;
};

class EmulatedKernel final : public Kernel {
 public:
  EmulatedKernel();
  ~EmulatedKernel() override;

  // Registers obj under a new, real, unique fd (an eventfd, so fd numbers
  // never collide with real fds and close() is safe); returns the fd.
  // REQUIRES: obj != nullptr.
  int Install(std::shared_ptr<EmulatedObject> obj);

  // Registers obj under fd, a real fd the caller hands over (a data_fd pipe
  // end): ioctls on fd go to obj, and Close(fd) unregisters it and closes
  // the real fd. REQUIRES: fd >= 0 is open and not registered; obj != null.
  void InstallAt(int fd, std::shared_ptr<EmulatedObject> obj);

  // Makes Open(path) return a new fd for factory() (e.g. "/dev/iommu",
  // "/dev/vfio/vfio", "/dev/vfio/devices/vfio0").
  void AddPath(std::string path,
               std::function<std::shared_ptr<EmulatedObject>()> factory);

  // The object behind fd, or nullptr if fd is not ours.
  std::shared_ptr<EmulatedObject> Lookup(int fd) const;
  // Lookup(fd) cast to T, or nullptr if not ours or not a T.
  template <class T>
  std::shared_ptr<T> LookupAs(int fd) const {
    return std::dynamic_pointer_cast<T>(Lookup(fd));
  }

  // Device DMA: every observer records it (IOMMU domains); the device's own
  // DMA log is updated by the device (see EmulatedVfioDevice::Dma).
  // RemoveDmaObserver() returns only once no RecordDma() call on observer
  // is running. Observers must not add or remove observers from RecordDma().
  // REQUIRES: observer != nullptr and outlives its registration.
  void AddDmaObserver(DmaObserver* observer);
  void RemoveDmaObserver(DmaObserver* observer);
  void NotifyDma(uint64_t iova, uint64_t length_bytes);

  // Number of fds currently registered (emulated objects and data_fds).
  size_t num_installed() const;

 protected:
  // Open: registered paths make a new object, others go to the real kernel.
  Result<int> DoOpen(const std::string& path, int flags) override;
  // Close: unregisters (if ours) and closes the real fd.
  Status DoClose(int fd) override;
  // Ioctl: dispatches to the object; fds that are not ours go to the real
  // kernel.
  Result<int> DoIoctl(int fd, unsigned long request, void* arg) override;
  // Mmap/Munmap/Read/Write: the real kernel.
  Result<void*> DoMmap(size_t length, int prot, int flags, int fd,
                       off_t offset) override;
  Status DoMunmap(void* addr, size_t length) override;
  Result<size_t> DoRead(int fd, void* buf, size_t length) override;
  Result<size_t> DoWrite(int fd, const void* buf, size_t length) override;

 private:
  Kernel& real_;

  mutable std::mutex mu_;  // guards objects_ and paths_
  std::map<int, std::shared_ptr<EmulatedObject>> objects_;
  std::map<std::string, std::function<std::shared_ptr<EmulatedObject>()>>
      paths_;

  // Held across RecordDma() calls so RemoveDmaObserver() waits for them.
  std::mutex observers_mu_;
  std::vector<DmaObserver*> observers_;
};

}  // namespace converge::sim

#endif  // CONVERGE_SIM_EMULATED_KERNEL_H_
