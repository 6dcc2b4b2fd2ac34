#include "vm/kvm_calls.h"

#include <fcntl.h>

#include <functional>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/vm/kvm_test_support.h"

namespace converge {
namespace {

class KvmCallsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CONVERGE_SKIP_WITHOUT_KVM();
    Result<int> kvm = kernel_.Open("/dev/kvm", O_RDWR);
    ASSERT_TRUE(kvm.ok()) << kvm.status().ToString();
    kvm_ = KernelFd(kernel_, *kvm);
    Result<int> vm = KvmCreateVm(kernel_, kvm_.get());
    ASSERT_TRUE(vm.ok()) << vm.status().ToString();
    vm_ = KernelFd(kernel_, *vm);
  }

  Kernel& kernel_ = Kernel::Default();
  KernelFd kvm_;
  KernelFd vm_;
};

TEST_F(KvmCallsTest, ApiVersionIs12) {
  Result<int> v = KvmGetApiVersion(kernel_, kvm_.get());
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, 12);
}

TEST_F(KvmCallsTest, CheckExtensionReportsDirtyTrackingCaps) {
  Result<int> manual =
      KvmCheckExtension(kernel_, vm_.get(), KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2);
  ASSERT_TRUE(manual.ok());
  EXPECT_EQ(*manual & 3, 3);  // ENABLE | INITIALLY_SET
  Result<int> ring =
      KvmCheckExtension(kernel_, vm_.get(), KVM_CAP_DIRTY_LOG_RING);
  ASSERT_TRUE(ring.ok());
  EXPECT_GT(*ring, 0);
  Result<int> unknown = KvmCheckExtension(kernel_, vm_.get(), 100000);
  ASSERT_TRUE(unknown.ok());
  EXPECT_EQ(*unknown, 0);
}

TEST_F(KvmCallsTest, VcpuSetupCallsSucceed) {
  Result<int> vcpu = KvmCreateVcpu(kernel_, vm_.get(), 0);
  ASSERT_TRUE(vcpu.ok()) << vcpu.status().ToString();
  KernelFd vcpu_fd(kernel_, *vcpu);
  Result<int> mmap_bytes = KvmGetVcpuMmapSize(kernel_, kvm_.get());
  ASSERT_TRUE(mmap_bytes.ok());
  EXPECT_GE(*mmap_bytes, 4096);
  kvm_sregs sregs{};
  ASSERT_TRUE(KvmGetSregs(kernel_, vcpu_fd.get(), sregs).ok());
  EXPECT_TRUE(KvmSetSregs(kernel_, vcpu_fd.get(), sregs).ok());
  kvm_regs regs{};
  regs.rflags = 2;
  EXPECT_TRUE(KvmSetRegs(kernel_, vcpu_fd.get(), regs).ok());
  Result<uint32_t> khz = KvmGetTscKhz(kernel_, vcpu_fd.get());
  ASSERT_TRUE(khz.ok());
  EXPECT_GT(*khz, 100000u);
}

TEST_F(KvmCallsTest, DirtyLogCallsFailWithKernelErrors) {
  // No slot 3: GET fails with ENOENT.
  std::vector<uint64_t> bitmap(1);
  Status get = KvmGetDirtyLog(kernel_, vm_.get(), 3, bitmap);
  EXPECT_EQ(get.sys_errno(), ENOENT) << get.ToString();
  EXPECT_NE(get.message().find("KVM_GET_DIRTY_LOG slot 3"), std::string::npos);
  Status clear = KvmClearDirtyLog(kernel_, vm_.get(), 3, 0, 64, bitmap);
  EXPECT_EQ(clear.sys_errno(), ENOENT) << clear.ToString();
  EXPECT_NE(clear.message().find("KVM_CLEAR_DIRTY_LOG slot 3 pages [0, +64)"),
            std::string::npos);
  // No ring enabled: reset is refused.
  Result<int> reset = KvmResetDirtyRings(kernel_, vm_.get());
  EXPECT_FALSE(reset.ok());
  EXPECT_NE(reset.status().message().find("KVM_RESET_DIRTY_RINGS"),
            std::string::npos);
}

TEST_F(KvmCallsTest, SetMemslotRejectsMisalignedRegion) {
  KvmMemslot slot;
  slot.slot = 0;
  slot.gpa = 100;  // not page aligned
  slot.bytes = 4096;
  Status s = KvmSetMemslot(kernel_, vm_.get(), slot);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_NE(s.message().find("KVM_SET_USER_MEMORY_REGION slot 0"),
            std::string::npos);
}

TEST_F(KvmCallsTest, EnableCapRejectsUnknownFlags) {
  Status s = KvmEnableCap(kernel_, vm_.get(),
                          KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, 0x80);
  EXPECT_EQ(s.sys_errno(), EINVAL) << s.ToString();
  EXPECT_NE(s.message().find("KVM_ENABLE_CAP 168 arg 128"), std::string::npos);
}

// Every wrapper on a closed fd: EBADF with the call named.
TEST_F(KvmCallsTest, EveryWrapperNamesItsCallOnBadFd) {
  constexpr int kBad = -1;
  std::vector<uint64_t> bitmap(1);
  kvm_sregs sregs{};
  kvm_regs regs{};
  KvmMemslot slot;
  struct Case {
    const char* name;
    std::function<Status()> call;
  };
  const std::vector<Case> cases = {
      {"KVM_GET_API_VERSION",
       [&] { return KvmGetApiVersion(kernel_, kBad).status(); }},
      {"KVM_CHECK_EXTENSION",
       [&] { return KvmCheckExtension(kernel_, kBad, 1).status(); }},
      {"KVM_CREATE_VM", [&] { return KvmCreateVm(kernel_, kBad).status(); }},
      {"KVM_ENABLE_CAP", [&] { return KvmEnableCap(kernel_, kBad, 1, 0); }},
      {"KVM_SET_USER_MEMORY_REGION",
       [&] { return KvmSetMemslot(kernel_, kBad, slot); }},
      {"KVM_CREATE_VCPU",
       [&] { return KvmCreateVcpu(kernel_, kBad, 0).status(); }},
      {"KVM_GET_VCPU_MMAP_SIZE",
       [&] { return KvmGetVcpuMmapSize(kernel_, kBad).status(); }},
      {"KVM_GET_SREGS", [&] { return KvmGetSregs(kernel_, kBad, sregs); }},
      {"KVM_SET_SREGS", [&] { return KvmSetSregs(kernel_, kBad, sregs); }},
      {"KVM_SET_REGS", [&] { return KvmSetRegs(kernel_, kBad, regs); }},
      {"KVM_GET_TSC_KHZ",
       [&] { return KvmGetTscKhz(kernel_, kBad).status(); }},
      {"KVM_RUN", [&] { return KvmRun(kernel_, kBad); }},
      {"KVM_GET_DIRTY_LOG",
       [&] { return KvmGetDirtyLog(kernel_, kBad, 0, bitmap); }},
      {"KVM_CLEAR_DIRTY_LOG",
       [&] { return KvmClearDirtyLog(kernel_, kBad, 0, 0, 64, bitmap); }},
      {"KVM_RESET_DIRTY_RINGS",
       [&] { return KvmResetDirtyRings(kernel_, kBad).status(); }},
  };
  for (const Case& c : cases) {
    Status s = c.call();
    EXPECT_EQ(s.sys_errno(), EBADF) << c.name << ": " << s.ToString();
    EXPECT_EQ(s.message().rfind(c.name, 0), 0u) << s.message();
  }
}

}  // namespace
}  // namespace converge
