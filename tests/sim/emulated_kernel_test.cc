#include "sim/emulated_kernel.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace converge::sim {
namespace {

class FakeObject : public EmulatedObject {
 public:
  explicit FakeObject(int result = 7) : result_(result) {}
  Result<int> Ioctl(unsigned long request, void* arg) override {
    last_request = request;
    last_arg = arg;
    if (result_ < 0) return ErrnoStatus(-result_, "fake ioctl");
    return result_;
  }
  unsigned long last_request = 0;
  void* last_arg = nullptr;

 private:
  int result_;
};

class OtherObject : public EmulatedObject {
 public:
  Result<int> Ioctl(unsigned long, void*) override { return 0; }
};

class RecordingObserver : public DmaObserver {
 public:
  void RecordDma(uint64_t iova, uint64_t length_bytes) override {
    calls.emplace_back(iova, length_bytes);
  }
  std::vector<std::pair<uint64_t, uint64_t>> calls;
};

bool FdOpen(int fd) { return ::fcntl(fd, F_GETFD) >= 0; }

TEST(EmulatedKernelTest, InstallLookupIoctlClose) {
  EmulatedKernel kernel;
  auto obj = std::make_shared<FakeObject>(7);
  int fd = kernel.Install(obj);
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(FdOpen(fd));
  EXPECT_EQ(kernel.Lookup(fd), obj);
  EXPECT_EQ(kernel.LookupAs<FakeObject>(fd), obj);
  EXPECT_EQ(kernel.LookupAs<OtherObject>(fd), nullptr);
  int arg = 0;
  Result<int> r = kernel.Ioctl(fd, 0x1234, &arg);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, 7);
  EXPECT_EQ(obj->last_request, 0x1234u);
  EXPECT_EQ(obj->last_arg, &arg);
  EXPECT_EQ(kernel.num_installed(), 1u);
  ASSERT_TRUE(kernel.Close(fd).ok());
  EXPECT_EQ(kernel.Lookup(fd), nullptr);
  EXPECT_EQ(kernel.num_installed(), 0u);
}

TEST(EmulatedKernelTest, InstalledFdsAreDistinctRealFds) {
  EmulatedKernel kernel;
  int a = kernel.Install(std::make_shared<FakeObject>());
  int b = kernel.Install(std::make_shared<FakeObject>());
  EXPECT_NE(a, b);
  EXPECT_TRUE(FdOpen(a));
  EXPECT_TRUE(FdOpen(b));
  ASSERT_TRUE(kernel.Close(a).ok());
  ASSERT_TRUE(kernel.Close(b).ok());
}

TEST(EmulatedKernelTest, ObjectErrorsPropagate) {
  EmulatedKernel kernel;
  int fd = kernel.Install(std::make_shared<FakeObject>(-EIO));
  Result<int> r = kernel.Ioctl(fd, 1, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().sys_errno(), EIO);
  EXPECT_EQ(r.status().code(), StatusCode::kIoError);
  ASSERT_TRUE(kernel.Close(fd).ok());
}

TEST(EmulatedKernelTest, OpenRegisteredPathMakesNewObjectEachTime) {
  EmulatedKernel kernel;
  int made = 0;
  kernel.AddPath("/dev/vfio/devices/vfio0", [&] {
    ++made;
    return std::make_shared<FakeObject>();
  });
  Result<int> a = kernel.Open("/dev/vfio/devices/vfio0", O_RDWR);
  Result<int> b = kernel.Open("/dev/vfio/devices/vfio0", O_RDWR);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
  EXPECT_EQ(made, 2);
  EXPECT_NE(kernel.LookupAs<FakeObject>(*a), nullptr);
  ASSERT_TRUE(kernel.Close(*a).ok());
  ASSERT_TRUE(kernel.Close(*b).ok());
}

TEST(EmulatedKernelTest, FactoryReturningNullIsEnodev) {
  EmulatedKernel kernel;
  kernel.AddPath("/dev/iommu", [] { return nullptr; });
  Result<int> r = kernel.Open("/dev/iommu", O_RDWR);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().sys_errno(), ENODEV);
  EXPECT_NE(r.status().message().find("/dev/iommu"), std::string::npos);
}

TEST(EmulatedKernelTest, UnregisteredPathsGoToTheRealKernel) {
  EmulatedKernel kernel;
  Result<int> fd = kernel.Open("/dev/null", O_RDONLY);
  ASSERT_TRUE(fd.ok()) << fd.status().ToString();
  EXPECT_EQ(kernel.Lookup(*fd), nullptr);
  ASSERT_TRUE(kernel.Close(*fd).ok());
  Result<int> missing = kernel.Open("/nonexistent/converge-sim", O_RDONLY);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().sys_errno(), ENOENT);
}

TEST(EmulatedKernelTest, ForeignFdsReadWriteAndIoctlThroughTheRealKernel) {
  EmulatedKernel kernel;
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  const char msg[] = "hello";
  Result<size_t> w = kernel.Write(p[1], msg, sizeof msg);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(*w, sizeof msg);
  int avail = 0;
  ASSERT_TRUE(kernel.Ioctl(p[0], FIONREAD, &avail).ok());
  EXPECT_EQ(avail, static_cast<int>(sizeof msg));
  char buf[16] = {};
  Result<size_t> r = kernel.Read(p[0], buf, sizeof buf);
  ASSERT_TRUE(r.ok());
  EXPECT_STREQ(buf, msg);
  ASSERT_TRUE(kernel.Close(p[0]).ok());
  ASSERT_TRUE(kernel.Close(p[1]).ok());
}

TEST(EmulatedKernelTest, UnknownClosedFdIsEbadf) {
  EmulatedKernel kernel;
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  ::close(p[0]);
  ::close(p[1]);
  Result<int> r = kernel.Ioctl(p[0], FIONREAD, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().sys_errno(), EBADF);
  Status c = kernel.Close(p[1]);
  EXPECT_EQ(c.sys_errno(), EBADF);
}

TEST(EmulatedKernelTest, MmapAndMunmapGoToTheRealKernel) {
  EmulatedKernel kernel;
  Result<void*> m = kernel.Mmap(4096, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  static_cast<char*>(*m)[0] = 1;
  EXPECT_TRUE(kernel.Munmap(*m, 4096).ok());
  Result<void*> bad = kernel.Mmap(4096, PROT_READ, MAP_SHARED, 12345, 0);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().sys_errno(), EBADF);
}

TEST(EmulatedKernelTest, InstallAtRoutesIoctlsAndCloseClosesTheFd) {
  EmulatedKernel kernel;
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  auto obj = std::make_shared<FakeObject>(3);
  kernel.InstallAt(p[0], obj);
  Result<int> r = kernel.Ioctl(p[0], 99, nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 3);
  ASSERT_TRUE(kernel.Close(p[0]).ok());
  EXPECT_FALSE(FdOpen(p[0]));
  EXPECT_EQ(kernel.Lookup(p[0]), nullptr);
  ::close(p[1]);
}

TEST(EmulatedKernelTest, DestructorClosesInstalledFds) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  {
    EmulatedKernel kernel;
    kernel.InstallAt(p[1], std::make_shared<FakeObject>());
  }
  char c;
  EXPECT_EQ(::read(p[0], &c, 1), 0);  // writer gone: EOF
  ::close(p[0]);
}

TEST(EmulatedKernelTest, DmaObserversSeeEveryNotification) {
  EmulatedKernel kernel;
  RecordingObserver a, b;
  kernel.AddDmaObserver(&a);
  kernel.AddDmaObserver(&b);
  kernel.NotifyDma(0x1000, 0x2000);
  kernel.RemoveDmaObserver(&a);
  kernel.NotifyDma(0x5000, 0x1000);
  ASSERT_EQ(a.calls.size(), 1u);
  EXPECT_EQ(a.calls[0], std::make_pair(uint64_t{0x1000}, uint64_t{0x2000}));
  ASSERT_EQ(b.calls.size(), 2u);
  EXPECT_EQ(b.calls[1], std::make_pair(uint64_t{0x5000}, uint64_t{0x1000}));
}

TEST(EmulatedKernelTest, ConcurrentInstallIoctlCloseThread) {
  EmulatedKernel kernel;
  constexpr int kThreads = 4;
  constexpr int kRounds = 200;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRounds; ++i) {
        int fd = kernel.Install(std::make_shared<FakeObject>(t));
        Result<int> r = kernel.Ioctl(fd, 1, nullptr);
        if (!r.ok() || *r != t) failures++;
        if (!kernel.Close(fd).ok()) failures++;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(kernel.num_installed(), 0u);
}

}  // namespace
}  // namespace converge::sim
