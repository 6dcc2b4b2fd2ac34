#include "vm/kvm_dirty_log_source.h"

#include <chrono>
#include <cstring>
#include <thread>

#include "gtest/gtest.h"
#include "sim/fault_kernel.h"
#include "tests/vm/kvm_test_support.h"
#include "vm/micro_vm.h"

namespace converge {
namespace {

using ::converge::sim::FaultKernel;
using ::converge::sim::FaultRule;
using ::converge::sim::KernelOp;
using ::converge::testing::HarvestRam;
using ::converge::testing::PagesOf;
using ::converge::testing::RearmRam;
using ::converge::testing::SomePages;
using ::converge::testing::StartedVm;
using ::converge::testing::WholeRam;
using ::converge::testing::WithMailbox;

constexpr uint64_t kMiB = uint64_t{1} << 20;

// 16 MiB in two 8 MiB slots, so windows and page lists cross a slot edge.
MicroVmOptions TwoSlotVm() {
  MicroVmOptions o;
  o.ram_bytes = 16 * kMiB;
  o.slot_bytes = 8 * kMiB;
  o.fill_ram = false;
  return o;
}

// Param: manual protect on or off.
class KvmDirtyLogSourceTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    CONVERGE_SKIP_WITHOUT_KVM();
    vm_ = StartedVm(kernel_, TwoSlotVm());
    ASSERT_NE(vm_, nullptr);
    KvmDirtyLogOptions o;
    o.manual_protect = GetParam();
    source_ = std::make_unique<KvmDirtyLogSource>(kernel_, vm_->vm_fd(),
                                                  vm_->memslots(), o);
    ASSERT_TRUE(source_->Start(WholeRam(*vm_), 4096).ok());
    // Settle: the first harvest reports every page with INITIALLY_SET.
    DirtyBitmap initial = HarvestRam(*source_, *vm_);
    EXPECT_EQ(initial.Count(), GetParam() ? vm_->num_pages() : 0u);
    RearmRam(*source_, *vm_);
  }

  FaultKernel kernel_{Kernel::Default()};
  std::unique_ptr<MicroVm> vm_;
  std::unique_ptr<KvmDirtyLogSource> source_;
};

TEST_P(KvmDirtyLogSourceTest, HarvestEqualsExactlyThePagesWritten) {
  const std::vector<uint64_t> pages = SomePages(vm_->num_pages(), 300, 1);
  ASSERT_TRUE(vm_->WritePages(pages).ok());
  EXPECT_EQ(PagesOf(HarvestRam(*source_, *vm_)), WithMailbox(pages));
  EXPECT_EQ(source_->stats().errors, 0u);
  EXPECT_EQ(source_->limits().align_pages, 64u);
}

TEST_P(KvmDirtyLogSourceTest, AfterRearmOnlyNewWritesShow) {
  const std::vector<uint64_t> first = SomePages(vm_->num_pages(), 50, 2);
  ASSERT_TRUE(vm_->WritePages(first).ok());
  EXPECT_EQ(PagesOf(HarvestRam(*source_, *vm_)), WithMailbox(first));
  RearmRam(*source_, *vm_);
  const std::vector<uint64_t> second = {3000, 3001, 2100};
  ASSERT_TRUE(vm_->WritePages(second).ok());
  EXPECT_EQ(PagesOf(HarvestRam(*source_, *vm_)), WithMailbox(second));
  RearmRam(*source_, *vm_);
  EXPECT_EQ(HarvestRam(*source_, *vm_).Count(), 0u);
}

TEST_P(KvmDirtyLogSourceTest, WindowsOfOneSlotCostOneGetPerPass) {
  const std::vector<uint64_t> pages = {16, 700, 1500, 2047, 2048, 4000};
  ASSERT_TRUE(vm_->WritePages(pages).ok());
  const uint64_t calls = source_->stats().kernel_calls;
  // Windows of 512 pages: 4 per 8 MiB slot, one GET per slot.
  EXPECT_EQ(PagesOf(HarvestRam(*source_, *vm_, 512)), WithMailbox(pages));
  EXPECT_EQ(source_->stats().kernel_calls - calls, 2u);
}

TEST_P(KvmDirtyLogSourceTest, UnalignedWindowsReportAndRearmExactly) {
  // Windows of 100 pages: not multiples of 64, crossing the slot edge.
  const std::vector<uint64_t> pages = {99, 100, 2047, 2048, 2050, 3001};
  ASSERT_TRUE(vm_->WritePages(pages).ok());
  EXPECT_EQ(PagesOf(HarvestRam(*source_, *vm_, 100)), WithMailbox(pages));
  RearmRam(*source_, *vm_, 100);
  const std::vector<uint64_t> again = {100, 2048};
  ASSERT_TRUE(vm_->WritePages(again).ok());
  EXPECT_EQ(PagesOf(HarvestRam(*source_, *vm_, 100)), WithMailbox(again));
}

TEST_P(KvmDirtyLogSourceTest, WritesAfterTheReportSurviveRearm) {
  const std::vector<uint64_t> a = {200};
  ASSERT_TRUE(vm_->WritePages(a).ok());
  DirtyBitmap out(vm_->num_pages());
  ASSERT_TRUE(source_->Harvest(0, 1024, out, 0).ok());
  EXPECT_TRUE(out.Test(200));
  // Page 300 is written after the report and before the window is re-armed:
  // with manual protect the re-arm clears only what was reported.
  const std::vector<uint64_t> b = {300};
  ASSERT_TRUE(vm_->WritePages(b).ok());
  ASSERT_TRUE(source_->Rearm(0, 1024).ok());
  source_->InvalidateCache();
  DirtyBitmap next(vm_->num_pages());
  ASSERT_TRUE(source_->Harvest(0, 1024, next, 0).ok());
  EXPECT_TRUE(next.Test(300));
  EXPECT_FALSE(next.Test(200));
}

TEST_P(KvmDirtyLogSourceTest, FailedGetMarksWindowAndLosesNothing) {
  const std::vector<uint64_t> pages = {20, 2100, 3000};
  ASSERT_TRUE(vm_->WritePages(pages).ok());
  kernel_.AddRule(FaultRule::FailNth(KernelOp::kIoctl, 1, EIO)
                      .OnRequest(KVM_GET_DIRTY_LOG));
  DirtyBitmap out(vm_->num_pages());
  Status s = source_->Harvest(0, vm_->num_pages(), out, 0);
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_NE(s.message().find("KVM_GET_DIRTY_LOG slot 0"), std::string::npos)
      << s.ToString();
  EXPECT_NE(s.message().find("kvm-log: window"), std::string::npos);
  EXPECT_EQ(out.Count(), vm_->num_pages());
  EXPECT_EQ(source_->stats().errors, 1u);
  EXPECT_EQ(source_->stats().pages_marked_on_error, vm_->num_pages());
  EXPECT_EQ(source_->stats().last_error, s);
  RearmRam(*source_, *vm_);
  // Every written page is still reported by a later harvest.
  source_->InvalidateCache();
  const std::set<uint64_t> later = PagesOf(HarvestRam(*source_, *vm_));
  for (uint64_t p : pages) EXPECT_EQ(later.count(p), 1u) << p;
}

TEST_P(KvmDirtyLogSourceTest, FailedClearKeepsPagesDirty) {
  const std::vector<uint64_t> pages = {40, 2500};
  ASSERT_TRUE(vm_->WritePages(pages).ok());
  EXPECT_EQ(PagesOf(HarvestRam(*source_, *vm_)), WithMailbox(pages));
  kernel_.AddRule(FaultRule::FailNth(KernelOp::kIoctl, 1, EIO)
                      .OnRequest(KVM_CLEAR_DIRTY_LOG));
  Status s = source_->Rearm(0, vm_->num_pages() * 4096 / 4096);
  if (!GetParam()) {
    EXPECT_TRUE(s.ok());  // nothing to re-arm: GET already did
    return;
  }
  EXPECT_NE(s.message().find("KVM_CLEAR_DIRTY_LOG"), std::string::npos)
      << s.ToString();
  // The pages were not re-armed: they are still dirty, and a retry works.
  source_->InvalidateCache();
  EXPECT_EQ(PagesOf(HarvestRam(*source_, *vm_)), WithMailbox(pages));
  RearmRam(*source_, *vm_);
  EXPECT_EQ(HarvestRam(*source_, *vm_).Count(), 0u);
}

TEST_P(KvmDirtyLogSourceTest, RejectsBadWindows) {
  DirtyBitmap out(vm_->num_pages());
  struct Case {
    uint64_t gpa, pages;
  };
  for (Case c : {Case{100, 1}, Case{0, 0}, Case{16 * kMiB, 1},
                 Case{16 * kMiB - 4096, 2}}) {
    Status s = source_->Harvest(c.gpa, c.pages, out, 0);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
    EXPECT_NE(s.message().find("inside one tracked range"), std::string::npos);
  }
  DirtyBitmap small(10);
  EXPECT_EQ(source_->Harvest(0, 64, small, 0).code(),
            StatusCode::kInvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(ManualProtect, KvmDirtyLogSourceTest,
                         ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& param_info) {
                           return param_info.param ? "Manual" : "GetClears";
                         });

TEST(KvmDirtyLogSourceStartTest, StartErrorsAndUnwind) {
  CONVERGE_SKIP_WITHOUT_KVM();
  FaultKernel kernel(Kernel::Default());
  std::unique_ptr<MicroVm> vm = StartedVm(kernel, TwoSlotVm());
  ASSERT_NE(vm, nullptr);
  KvmDirtyLogSource source(kernel, vm->vm_fd(), vm->memslots());
  EXPECT_TRUE(source.Stop().ok());  // not started
  EXPECT_EQ(source.Start(WholeRam(*vm), 8192).code(),
            StatusCode::kInvalidArgument);
  const std::vector<GpaRange> unbacked = {GpaRange{0, 32 * kMiB}};
  Status s = source.Start(unbacked, 4096);
  EXPECT_NE(s.message().find("backed by memslots"), std::string::npos);
  // Slot 1 fails to start logging: slot 0 must not be left logging.
  kernel.AddRule(FaultRule::FailNth(KernelOp::kIoctl, 2, ENOMEM)
                     .OnRequest(KVM_SET_USER_MEMORY_REGION));
  s = source.Start(WholeRam(*vm), 4096);
  EXPECT_NE(s.message().find("KVM_SET_USER_MEMORY_REGION slot 1"),
            std::string::npos) << s.ToString();
  std::vector<uint64_t> bitmap(vm->memslots()[0].bitmap_words());
  EXPECT_EQ(KvmGetDirtyLog(kernel, vm->vm_fd(), 0, bitmap).sys_errno(),
            ENOENT);
  // A range over one slot tracks that slot only.
  const std::vector<GpaRange> upper = {GpaRange{8 * kMiB, 8 * kMiB}};
  ASSERT_TRUE(source.Start(upper, 4096).ok());
  EXPECT_EQ(source.Start(upper, 4096).code(), StatusCode::kFailedPrecondition);
  DirtyBitmap out(2048);
  EXPECT_TRUE(source.Harvest(8 * kMiB, 2048, out, 0).ok());
  EXPECT_FALSE(source.Harvest(0, 64, out, 0).ok());
  EXPECT_TRUE(source.Stop().ok());
}

TEST(KvmDirtyLogSourceBigTest, MultiGiBSlotReportsExactlyTheFewPagesWritten) {
  CONVERGE_SKIP_WITHOUT_KVM();
  MicroVmOptions o;
  o.ram_bytes = uint64_t{3} << 30;
  o.fill_ram = false;
  std::unique_ptr<MicroVm> vm = StartedVm(Kernel::Default(), o);
  ASSERT_NE(vm, nullptr);
  ASSERT_EQ(vm->memslots().size(), 1u);
  KvmDirtyLogSource source(Kernel::Default(), vm->vm_fd(), vm->memslots());
  ASSERT_TRUE(source.Start(WholeRam(*vm), 4096).ok());
  EXPECT_EQ(HarvestRam(source, *vm).Count(), vm->num_pages());
  RearmRam(source, *vm);
  const std::vector<uint64_t> pages = SomePages(vm->num_pages(), 64, 3);
  ASSERT_TRUE(vm->WritePages(pages).ok());
  // 1 GiB windows, as the engine harvests.
  EXPECT_EQ(PagesOf(HarvestRam(source, *vm, 262144)), WithMailbox(pages));
}

}  // namespace
}  // namespace converge
