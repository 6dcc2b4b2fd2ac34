#include "vm/micro_vm.h"

#include <chrono>
#include <cstring>
#include <thread>

#include "gtest/gtest.h"
#include "sim/fault_kernel.h"
#include "tests/vm/kvm_test_support.h"
#include "vm/kvm_dirty_log_source.h"

namespace converge {
namespace {

using ::converge::sim::FaultKernel;
using ::converge::sim::FaultRule;
using ::converge::sim::KernelOp;
using ::converge::testing::HarvestRam;
using ::converge::testing::PagesOf;
using ::converge::testing::StartedVm;
using ::converge::testing::WholeRam;
using ::converge::testing::WithMailbox;
using std::chrono::milliseconds;

constexpr uint64_t kMiB = uint64_t{1} << 20;

MicroVmOptions SmallVm(uint64_t ram_bytes = 16 * kMiB) {
  MicroVmOptions o;
  o.ram_bytes = ram_bytes;
  o.fill_ram = false;
  return o;
}

uint32_t PageWord(const MicroVm& vm, uint64_t page, uint64_t index) {
  uint32_t w;
  memcpy(&w, vm.ram() + page * MicroVm::kPageBytes + index * 4, 4);
  return w;
}

TEST(MicroVmTest, CreateRejectsBadOptions) {
  CONVERGE_SKIP_WITHOUT_KVM();
  struct Case {
    uint64_t ram_bytes, slot_bytes;
    uint32_t ring_bytes;
  };
  for (Case c : {Case{0, 0, 0}, Case{16 * kMiB + 1, 0, 0},
                 Case{(uint64_t{4} << 30) + 4096, 0, 0}, Case{64 * 1024, 0, 0},
                 Case{16 * kMiB, 100, 0}, Case{16 * kMiB, 0, 12288},
                 Case{16 * kMiB, 0, 1u << 31}}) {
    MicroVmOptions o = SmallVm(c.ram_bytes);
    o.slot_bytes = c.slot_bytes;
    o.dirty_ring_bytes = c.ring_bytes;
    Result<std::unique_ptr<MicroVm>> vm = MicroVm::Create(Kernel::Default(), o);
    ASSERT_FALSE(vm.ok()) << c.ram_bytes << " " << c.slot_bytes;
    EXPECT_EQ(vm.status().code(), StatusCode::kInvalidArgument)
        << vm.status().ToString();
    EXPECT_NE(vm.status().message().find("MicroVm"), std::string::npos);
  }
}

TEST(MicroVmTest, SplitsRamIntoSlotsAndFillsTheMix) {
  CONVERGE_SKIP_WITHOUT_KVM();
  MicroVmOptions o = SmallVm(10 * kMiB);
  o.slot_bytes = 4 * kMiB;
  o.fill_ram = true;
  Result<std::unique_ptr<MicroVm>> vm = MicroVm::Create(Kernel::Default(), o);
  ASSERT_TRUE(vm.ok()) << vm.status().ToString();
  const std::vector<KvmMemslot>& slots = (*vm)->memslots();
  ASSERT_EQ(slots.size(), 3u);
  EXPECT_EQ(slots[2].gpa, 8 * kMiB);
  EXPECT_EQ(slots[2].bytes, 2 * kMiB);
  EXPECT_EQ(slots[1].host, (*vm)->ram() + 4 * kMiB);
  const RamFillCounts& fill = (*vm)->fill_counts();
  EXPECT_EQ(fill.zero_pages + fill.text_pages + fill.random_pages,
            (*vm)->num_pages() - MicroVm::kFirstWorkloadPage);
  EXPECT_GT(fill.text_pages, 0u);
  EXPECT_GT(fill.random_pages, 0u);
  EXPECT_GT((*vm)->tsc_khz(), 0u);
  EXPECT_EQ((*vm)->vcpu_fds().size(), 1u);
  EXPECT_TRUE((*vm)->dirty_rings().empty());
}

TEST(MicroVmTest, WritePagesWritesEachListedPage) {
  CONVERGE_SKIP_WITHOUT_KVM();
  std::unique_ptr<MicroVm> vm = StartedVm(Kernel::Default(), SmallVm());
  ASSERT_NE(vm, nullptr);
  const std::vector<uint64_t> pages = {16, 17, 300, vm->num_pages() - 1};
  ASSERT_TRUE(vm->WritePages(pages).ok());
  EXPECT_EQ(vm->pages_written(), pages.size());
  for (size_t i = 0; i < pages.size(); ++i) {
    EXPECT_EQ(PageWord(*vm, pages[i], 0), i);  // pages written before it
    EXPECT_NE(PageWord(*vm, pages[i], 1), 0u);  // the command sequence
  }
  EXPECT_EQ(PageWord(*vm, 18, 0), 0u);
  ASSERT_TRUE(vm->SweepOnce(1000, 10).ok());
  EXPECT_EQ(vm->pages_written(), pages.size() + 10);
  EXPECT_EQ(PageWord(*vm, 1009, 0), pages.size() + 9);
  EXPECT_TRUE(vm->vcpu_status().ok());
}

TEST(MicroVmTest, RejectsBadWorkloads) {
  CONVERGE_SKIP_WITHOUT_KVM();
  Result<std::unique_ptr<MicroVm>> vm =
      MicroVm::Create(Kernel::Default(), SmallVm());
  ASSERT_TRUE(vm.ok());
  const uint64_t pages = (*vm)->num_pages();
  auto spec = [](GuestWorkload kind, uint64_t first, uint64_t count) {
    WorkloadSpec s;
    s.kind = kind;
    s.first_page = first;
    s.num_pages = count;
    return s;
  };
  std::vector<WorkloadSpec> bad = {
      spec(GuestWorkload::kSequential, 1, 10),          // mailbox
      spec(GuestWorkload::kSequential, pages - 5, 10),  // past the end
      spec(GuestWorkload::kSequential, pages + 1, 0),
      spec(GuestWorkload::kHotCold, 100, 1),
  };
  WorkloadSpec no_burst = spec(GuestWorkload::kBursts, 100, 10);
  no_burst.burst_pages = 0;
  bad.push_back(no_burst);
  WorkloadSpec long_pause = spec(GuestWorkload::kBursts, 100, 10);
  long_pause.burst_pause_us = UINT32_MAX;  // past 2^32 TSC ticks
  bad.push_back(long_pause);
  for (const WorkloadSpec& s : bad) {
    Status st = (*vm)->SetWorkload(s);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
  }
  std::vector<uint64_t> list = {5};
  EXPECT_EQ((*vm)->WritePages(list).code(), StatusCode::kInvalidArgument);
  std::vector<uint64_t> long_list(MicroVm::kMaxPageList + 1, 100);
  EXPECT_EQ((*vm)->WritePages(long_list).code(), StatusCode::kInvalidArgument);
  // Not started: one-shot commands need a running vCPU.
  list = {100};
  EXPECT_EQ((*vm)->WritePages(list).code(), StatusCode::kFailedPrecondition);
}

TEST(MicroVmTest, PauseStopsWritesThread) {
  CONVERGE_SKIP_WITHOUT_KVM();
  std::unique_ptr<MicroVm> vm = StartedVm(Kernel::Default(), SmallVm());
  ASSERT_NE(vm, nullptr);
  KvmDirtyLogSource log(Kernel::Default(), vm->vm_fd(), vm->memslots());
  ASSERT_TRUE(log.Start(WholeRam(*vm), 4096).ok());
  WorkloadSpec spec;
  spec.kind = GuestWorkload::kSequential;
  ASSERT_TRUE(vm->SetWorkload(spec).ok());
  ASSERT_TRUE(vm->WaitForPagesWritten(1000, milliseconds(10000)).ok());
  ASSERT_TRUE(vm->Pause().ok());
  EXPECT_TRUE(vm->paused());
  const uint64_t written = vm->pages_written();
  DirtyBitmap first = HarvestRam(log, *vm);
  testing::RearmRam(log, *vm);
  EXPECT_GT(first.Count(), 1000u);
  std::this_thread::sleep_for(milliseconds(50));
  EXPECT_EQ(vm->pages_written(), written);
  EXPECT_EQ(HarvestRam(log, *vm).Count(), 0u);
  // A command posted while paused waits for Resume.
  WorkloadSpec idle;
  ASSERT_TRUE(vm->SetWorkload(idle).ok());
  ASSERT_TRUE(vm->Resume().ok());
  EXPECT_FALSE(vm->paused());
  ASSERT_TRUE(vm->Pause().ok());
  ASSERT_TRUE(vm->Resume().ok());
  ASSERT_TRUE(vm->SetWorkload(spec).ok());
  EXPECT_TRUE(vm->WaitForPagesWritten(written + 100, milliseconds(10000)).ok());
  EXPECT_GE(vm->stats().interrupted_exits, 1u);
  EXPECT_GT(vm->stats().run_ns, 0u);
}

TEST(MicroVmTest, IdleWritesOnlyTheMailboxThread) {
  CONVERGE_SKIP_WITHOUT_KVM();
  std::unique_ptr<MicroVm> vm = StartedVm(Kernel::Default(), SmallVm());
  ASSERT_NE(vm, nullptr);
  KvmDirtyLogSource log(Kernel::Default(), vm->vm_fd(), vm->memslots());
  ASSERT_TRUE(log.Start(WholeRam(*vm), 4096).ok());
  (void)HarvestRam(log, *vm);
  testing::RearmRam(log, *vm);
  WorkloadSpec idle;
  ASSERT_TRUE(vm->SetWorkload(idle).ok());  // the ack dirties the mailbox
  std::this_thread::sleep_for(milliseconds(20));
  EXPECT_EQ(PagesOf(HarvestRam(log, *vm)), WithMailbox({}));
  EXPECT_GE(vm->stats().hlt_exits, 1u);
}

TEST(MicroVmTest, KvmRunFailureStopsTheVcpu) {
  CONVERGE_SKIP_WITHOUT_KVM();
  FaultKernel kernel(Kernel::Default());
  kernel.AddRule(FaultRule::FailNth(KernelOp::kIoctl, 1, EFAULT)
                     .OnRequest(KVM_RUN));
  std::unique_ptr<MicroVm> vm = StartedVm(kernel, SmallVm());
  ASSERT_NE(vm, nullptr);
  std::vector<uint64_t> list = {100};
  EXPECT_FALSE(vm->WritePages(list).ok());
  Status s = vm->vcpu_status();
  EXPECT_NE(s.message().find("KVM_RUN"), std::string::npos) << s.ToString();
  EXPECT_TRUE(vm->Pause().ok());
}

TEST(MicroVmTest, FailedCreateReportsTheFailingCall) {
  CONVERGE_SKIP_WITHOUT_KVM();
  struct Case {
    FaultRule rule;
    const char* expect;
  };
  const std::vector<Case> cases = {
      {FaultRule::FailNth(KernelOp::kOpen, 1, ENOENT), "/dev/kvm"},
      {FaultRule::FailNth(KernelOp::kIoctl, 1, ENOMEM)
           .OnRequest(KVM_CREATE_VM), "KVM_CREATE_VM"},
      {FaultRule::FailNth(KernelOp::kIoctl, 2, EEXIST)
           .OnRequest(KVM_SET_USER_MEMORY_REGION), "slot 1"},
      {FaultRule::FailNth(KernelOp::kIoctl, 1, EINVAL)
           .OnRequest(KVM_CREATE_VCPU), "KVM_CREATE_VCPU"},
      {FaultRule::FailNth(KernelOp::kMmap, 1, ENOMEM), "mmap"},
      {FaultRule::FailNth(KernelOp::kMmap, 2, ENOMEM), "dirty ring"},
      {FaultRule::FailNth(KernelOp::kIoctl, 1, EINVAL)
           .OnRequest(KVM_SET_SREGS), "KVM_SET_SREGS"},
      {FaultRule::FailNth(KernelOp::kIoctl, 1, EINVAL)
           .OnRequest(KVM_ENABLE_CAP), "KVM_ENABLE_CAP"},
  };
  for (const Case& c : cases) {
    FaultKernel kernel(Kernel::Default());
    kernel.AddRule(c.rule);
    MicroVmOptions o = SmallVm();
    o.slot_bytes = 8 * kMiB;
    o.dirty_ring_bytes = 64 * 1024;
    Result<std::unique_ptr<MicroVm>> vm = MicroVm::Create(kernel, o);
    ASSERT_FALSE(vm.ok()) << c.expect;
    EXPECT_NE(vm.status().ToString().find(c.expect), std::string::npos)
        << vm.status().ToString();
  }
}

}  // namespace
}  // namespace converge
