#include "sim/fault_kernel.h"

#include <fcntl.h>
#include <unistd.h>

#include "gtest/gtest.h"
#include "iommu/uapi_compat.h"
#include "sim/emulated_type1.h"

namespace converge::sim {
namespace {

class FaultKernelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    EmulatedType1Container::Register(emu_);
    fd_ = *emu_.Open("/dev/vfio/vfio", O_RDWR);
  }
  Result<int> Version() {
    return fault_.Ioctl(fd_, VFIO_GET_API_VERSION, nullptr);
  }
  EmulatedKernel emu_;
  FaultKernel fault_{emu_};
  int fd_ = -1;
};

TEST_F(FaultKernelTest, FailNthFromAndRange) {
  struct Case {
    FaultRule rule;
    std::vector<bool> fails;  // calls 1..6
  } cases[] = {
      {FaultRule::FailNth(KernelOp::kIoctl, 2, EIO),
       {false, true, false, false, false, false}},
      {FaultRule::FailFrom(KernelOp::kIoctl, 4, ENODEV),
       {false, false, false, true, true, true}},
      {FaultRule::FailCalls(KernelOp::kIoctl, 2, 3, EINVAL),
       {false, true, true, false, false, false}},
  };
  for (const Case& c : cases) {
    fault_.ClearRules();
    int id = fault_.AddRule(c.rule);
    for (size_t i = 0; i < c.fails.size(); ++i) {
      Result<int> r = Version();
      EXPECT_EQ(!r.ok(), c.fails[i]) << "call " << i + 1;
      if (!r.ok()) {
        EXPECT_EQ(r.status().sys_errno(), c.rule.error);
      }
    }
    fault_.RemoveRule(id);
    EXPECT_TRUE(Version().ok());
  }
}

TEST_F(FaultKernelTest, EintrStormIsRetriedByTheSeam) {
  fault_.AddRule(FaultRule::EintrStorm(KernelOp::kIoctl, 5));
  Result<int> r = Version();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(fault_.calls(KernelOp::kIoctl), 6u);
  EXPECT_EQ(fault_.injected(), 5u);
  fault_.ClearRules();
  fault_.ResetCounters();
  fault_.AddRule(FaultRule::EintrStorm(KernelOp::kIoctl, 1));
  Result<int> once =
      fault_.Ioctl(fd_, VFIO_GET_API_VERSION, nullptr, EintrPolicy::kReturn);
  EXPECT_EQ(once.status().code(), StatusCode::kInterrupted);
}

TEST_F(FaultKernelTest, MatchesRequestAndFdAndCounts) {
  fault_.AddRule(FaultRule::FailFrom(KernelOp::kIoctl, 1, EPERM)
                     .OnRequest(VFIO_CHECK_EXTENSION)
                     .OnFd(fd_));
  EXPECT_TRUE(Version().ok());
  EXPECT_EQ(fault_.Ioctl(fd_, VFIO_CHECK_EXTENSION, nullptr).status().sys_errno(),
            EPERM);
  EXPECT_EQ(fault_.ioctl_calls(VFIO_GET_API_VERSION), 1u);
  EXPECT_EQ(fault_.ioctl_calls(VFIO_CHECK_EXTENSION), 1u);
  EXPECT_EQ(fault_.calls(KernelOp::kIoctl), 2u);
}

TEST_F(FaultKernelTest, OpenCloseMmapFailAndShortIo) {
  fault_.AddRule(FaultRule::FailNth(KernelOp::kOpen, 1, EACCES));
  EXPECT_EQ(fault_.Open("/dev/vfio/vfio", O_RDWR).status().sys_errno(), EACCES);
  auto fd = fault_.Open("/dev/vfio/vfio", O_RDWR);
  ASSERT_TRUE(fd.ok());
  fault_.AddRule(FaultRule::FailNth(KernelOp::kClose, 1, EIO));
  EXPECT_EQ(fault_.Close(*fd).sys_errno(), EIO);
  EXPECT_EQ(emu_.Lookup(*fd), nullptr) << "the fd is released anyway";
  fault_.AddRule(FaultRule::FailNth(KernelOp::kMmap, 1, ENOMEM));
  EXPECT_EQ(fault_.Mmap(4096, 0, 0, -1, 0).status().sys_errno(), ENOMEM);

  int p[2];
  ASSERT_EQ(pipe(p), 0);
  fault_.AddRule(FaultRule::ShortIo(KernelOp::kWrite, 3));
  fault_.AddRule(FaultRule::ShortIo(KernelOp::kRead, 2));
  EXPECT_EQ(*fault_.Write(p[1], "abcdef", 6), 3u);
  char buf[8];
  EXPECT_EQ(*fault_.Read(p[0], buf, sizeof buf), 2u);
  EXPECT_EQ(std::string(buf, 2), "ab");
  close(p[0]);
  close(p[1]);
}

}  // namespace
}  // namespace converge::sim
