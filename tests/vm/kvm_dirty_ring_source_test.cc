#include "vm/kvm_dirty_ring_source.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <set>
#include <thread>

#include "gtest/gtest.h"
#include "sim/fault_kernel.h"
#include "tests/vm/kvm_test_support.h"
#include "vm/kvm_dirty_log_source.h"
#include "vm/micro_vm.h"

namespace converge {
namespace {

using ::converge::sim::FaultKernel;
using ::converge::sim::FaultRule;
using ::converge::sim::KernelOp;
using ::converge::testing::HarvestRam;
using ::converge::testing::PagesOf;
using ::converge::testing::SomePages;
using ::converge::testing::WholeRam;
using ::converge::testing::WithMailbox;

constexpr uint64_t kMiB = uint64_t{1} << 20;

MicroVmOptions RingVm(uint32_t ring_bytes) {
  MicroVmOptions o;
  o.ram_bytes = 64 * kMiB;
  o.slot_bytes = 32 * kMiB;
  o.dirty_ring_bytes = ring_bytes;
  o.fill_ram = false;
  return o;
}

class KvmDirtyRingSourceTest : public ::testing::Test {
 protected:
  // Creates the VM and the source, wires the ring-full handler, starts both.
  void Open(uint32_t ring_bytes) {
    Result<std::unique_ptr<MicroVm>> vm =
        MicroVm::Create(kernel_, RingVm(ring_bytes));
    ASSERT_TRUE(vm.ok()) << vm.status().ToString();
    vm_ = std::move(*vm);
    ASSERT_EQ(vm_->dirty_rings().size(), 1u);
    source_ = std::make_unique<KvmDirtyRingSource>(
        kernel_, vm_->vm_fd(), vm_->memslots(), vm_->dirty_rings());
    const int vcpu_fd = vm_->vcpu_fds()[0];
    vm_->SetDirtyRingFullHandler(
        [this, vcpu_fd] { return source_->CollectFull(vcpu_fd); });
    ASSERT_TRUE(vm_->Start().ok());
    ASSERT_TRUE(source_->Start(WholeRam(*vm_), 4096).ok());
  }

  void SetUp() override { CONVERGE_SKIP_WITHOUT_KVM(); }

  // The source reads the VM's rings and the vCPU thread calls the source:
  // park the vCPU, drop the source, then the VM.
  void TearDown() override {
    if (vm_ != nullptr) {
      EXPECT_TRUE(vm_->Pause().ok());
    }
    source_.reset();
    vm_.reset();
  }

  // Has the guest write every page of pages (in lists of at most
  // kMaxPageList).
  void WriteAll(const std::vector<uint64_t>& pages) {
    for (size_t i = 0; i < pages.size(); i += MicroVm::kMaxPageList) {
      const size_t n = std::min<size_t>(MicroVm::kMaxPageList,
                                        pages.size() - i);
      ASSERT_TRUE(vm_->WritePages({pages.data() + i, n}).ok())
          << vm_->vcpu_status().ToString();
    }
  }

  // The union of harvests must hold every page written. It equals them
  // exactly unless KVM overran the ring, when the source reports every
  // page instead. The vCPU keeps running either way, and a few more writes
  // are reported; exactly so once the ring is back in step with KVM (a
  // ring overrun just before the guest went idle stays out of step, and
  // reports everything, until its vCPU next exits full).
  void ExpectNothingLost(const std::set<uint64_t>& harvested,
                         const std::set<uint64_t>& written) {
    EXPECT_TRUE(std::includes(harvested.begin(), harvested.end(),
                              written.begin(), written.end()));
    const KvmDirtyRingStats stats = source_->ring_stats();
    if (stats.overflows == 0) {
      EXPECT_EQ(harvested, written);
    } else {
      EXPECT_EQ(harvested.size(), vm_->num_pages());
    }
    EXPECT_TRUE(vm_->vcpu_status().ok()) << vm_->vcpu_status().ToString();
    const bool in_step = stats.resyncs == stats.overflows;
    const std::vector<uint64_t> few = {40, 4000, 9000};
    ASSERT_TRUE(vm_->WritePages(few).ok());
    const std::set<uint64_t> last = PagesOf(HarvestRam(*source_, *vm_));
    const std::set<uint64_t> expected = WithMailbox(few);
    EXPECT_TRUE(std::includes(last.begin(), last.end(), expected.begin(),
                              expected.end()));
    if (in_step) {
      EXPECT_EQ(last, expected);
    }
  }

  FaultKernel kernel_{Kernel::Default()};
  std::unique_ptr<MicroVm> vm_;
  std::unique_ptr<KvmDirtyRingSource> source_;
};

TEST_F(KvmDirtyRingSourceTest, HarvestEqualsExactlyThePagesWritten) {
  Open(64 * 1024);
  const std::vector<uint64_t> pages = SomePages(vm_->num_pages(), 300, 4);
  ASSERT_TRUE(vm_->WritePages(pages).ok());
  EXPECT_EQ(PagesOf(HarvestRam(*source_, *vm_)), WithMailbox(pages));
  EXPECT_EQ(HarvestRam(*source_, *vm_).Count(), 0u);
  const std::vector<uint64_t> again = {pages[0], pages[5]};
  ASSERT_TRUE(vm_->WritePages(again).ok());
  // Harvest in windows that do not start on word boundaries.
  EXPECT_EQ(PagesOf(HarvestRam(*source_, *vm_, 100)), WithMailbox(again));
  EXPECT_GE(source_->ring_stats().entries_collected, 302u);
  EXPECT_EQ(source_->ring_stats().foreign_entries, 0u);
}

TEST_F(KvmDirtyRingSourceTest, DirtyLogCallsFailWithEnxio) {
  Open(64 * 1024);
  std::vector<uint64_t> bitmap(vm_->memslots()[0].bitmap_words());
  Status get = KvmGetDirtyLog(kernel_, vm_->vm_fd(), 0, bitmap);
  EXPECT_EQ(get.sys_errno(), ENXIO) << get.ToString();
  Status clear = KvmClearDirtyLog(kernel_, vm_->vm_fd(), 0, 0, 64, bitmap);
  EXPECT_EQ(clear.sys_errno(), ENXIO) << clear.ToString();
  // And so a dirty-log harvest fails, reporting its window dirty.
  KvmDirtyLogSource log(kernel_, vm_->vm_fd(), vm_->memslots());
  ASSERT_TRUE(log.Start(WholeRam(*vm_), 4096).ok());
  DirtyBitmap out(vm_->num_pages());
  Status s = log.Harvest(0, 64, out, 0);
  EXPECT_EQ(s.sys_errno(), ENXIO) << s.ToString();
  EXPECT_EQ(out.Count(), 64u);
}

TEST_F(KvmDirtyRingSourceTest, AgreesWithTheDirtyLog) {
  Open(64 * 1024);
  MicroVmOptions log_options = RingVm(0);
  std::unique_ptr<MicroVm> log_vm =
      testing::StartedVm(Kernel::Default(), log_options);
  ASSERT_NE(log_vm, nullptr);
  KvmDirtyLogSource log(Kernel::Default(), log_vm->vm_fd(),
                        log_vm->memslots());
  ASSERT_TRUE(log.Start(WholeRam(*log_vm), 4096).ok());
  (void)HarvestRam(log, *log_vm);
  testing::RearmRam(log, *log_vm);
  (void)HarvestRam(*source_, *vm_);
  for (uint64_t seed = 10; seed < 13; ++seed) {
    const std::vector<uint64_t> pages =
        SomePages(vm_->num_pages(), 500, seed);
    ASSERT_TRUE(vm_->WritePages(pages).ok());
    ASSERT_TRUE(log_vm->WritePages(pages).ok());
    const DirtyBitmap from_ring = HarvestRam(*source_, *vm_);
    const DirtyBitmap from_log = HarvestRam(log, *log_vm);
    testing::RearmRam(log, *log_vm);
    EXPECT_EQ(from_ring, from_log) << "seed " << seed;
    EXPECT_EQ(PagesOf(from_ring), WithMailbox(pages)) << "seed " << seed;
  }
}

TEST_F(KvmDirtyRingSourceTest, FailedResetMarksWindowAndReportsAgain) {
  Open(64 * 1024);
  const std::vector<uint64_t> pages = {30, 3000};
  ASSERT_TRUE(vm_->WritePages(pages).ok());
  kernel_.AddRule(FaultRule::FailNth(KernelOp::kIoctl, 1, EIO)
                      .OnRequest(KVM_RESET_DIRTY_RINGS));
  DirtyBitmap out(vm_->num_pages());
  Status s = source_->Harvest(0, 1024, out, 0);
  EXPECT_NE(s.message().find("KVM_RESET_DIRTY_RINGS"), std::string::npos)
      << s.ToString();
  EXPECT_EQ(out.Count(), 1024u);
  EXPECT_EQ(source_->stats().errors, 1u);
  EXPECT_EQ(source_->ring_stats().reset_failures, 1u);
  // The collected pages come back once a reset succeeds, window 0 included.
  EXPECT_EQ(PagesOf(HarvestRam(*source_, *vm_)), WithMailbox(pages));
}

// A 16 KiB ring (1024 entries, a soft limit of 448 to 960) fills many
// times over while the guest writes thousands of distinct pages; the vCPU
// thread harvests it on each full exit.
TEST_F(KvmDirtyRingSourceTest, ThreadFillsSmallRingNothingLost) {
  Open(16 * 1024);
  (void)HarvestRam(*source_, *vm_);
  std::set<uint64_t> written = {MicroVm::kMailboxPage};
  std::set<uint64_t> harvested;
  for (uint64_t seed = 20; seed < 23; ++seed) {
    const std::vector<uint64_t> pages =
        SomePages(vm_->num_pages(), 6000, seed);
    WriteAll(pages);
    written.insert(pages.begin(), pages.end());
    const std::set<uint64_t> h = PagesOf(HarvestRam(*source_, *vm_));
    harvested.insert(h.begin(), h.end());
  }
  EXPECT_GT(vm_->stats().ring_full_exits, 10u);
  ExpectNothingLost(harvested, written);
}

// Harvests run on another thread while the vCPU thread takes full exits and
// collects the same ring. After each harvest the harvester waits for the
// next full exit, so the ring fills and the two interleave however the
// threads are scheduled (a harvester that keeps up would never let it fill).
TEST_F(KvmDirtyRingSourceTest, ThreadHarvestsDuringRingFullExits) {
  Open(16 * 1024);
  (void)HarvestRam(*source_, *vm_);
  std::atomic<bool> done{false};
  std::set<uint64_t> harvested;
  uint64_t harvests = 0;
  std::thread harvester([&] {
    uint64_t full_exits = vm_->stats().ring_full_exits;
    while (!done.load(std::memory_order_acquire)) {
      const std::set<uint64_t> h = PagesOf(HarvestRam(*source_, *vm_, 4096));
      harvested.insert(h.begin(), h.end());
      ++harvests;
      while (!done.load(std::memory_order_acquire) &&
             vm_->stats().ring_full_exits == full_exits) {
        std::this_thread::sleep_for(std::chrono::microseconds(50));
      }
      full_exits = vm_->stats().ring_full_exits;
    }
  });
  std::set<uint64_t> written = {MicroVm::kMailboxPage};
  for (uint64_t seed = 30; seed < 34; ++seed) {
    const std::vector<uint64_t> pages =
        SomePages(vm_->num_pages(), 5000, seed);
    WriteAll(pages);
    written.insert(pages.begin(), pages.end());
  }
  done.store(true, std::memory_order_release);
  harvester.join();
  const std::set<uint64_t> last = PagesOf(HarvestRam(*source_, *vm_));
  harvested.insert(last.begin(), last.end());
  EXPECT_GT(harvests, 0u);
  EXPECT_GT(vm_->stats().ring_full_exits, 0u);
  ExpectNothingLost(harvested, written);
}

TEST_F(KvmDirtyRingSourceTest, CollectFullNamesAnUnknownVcpu) {
  Open(64 * 1024);
  Status s = source_->CollectFull(-7);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("vCPU fd -7"), std::string::npos) << s.ToString();
  EXPECT_TRUE(source_->CollectFull(vm_->vcpu_fds()[0]).ok());
}

TEST_F(KvmDirtyRingSourceTest, StartErrors) {
  Open(64 * 1024);
  EXPECT_EQ(source_->Start(WholeRam(*vm_), 4096).code(),
            StatusCode::kFailedPrecondition);
  KvmDirtyRingSource no_rings(kernel_, vm_->vm_fd(), vm_->memslots(), {});
  EXPECT_EQ(no_rings.Start(WholeRam(*vm_), 4096).code(),
            StatusCode::kFailedPrecondition);
  KvmDirtyRingSource other(kernel_, vm_->vm_fd(), vm_->memslots(),
                           vm_->dirty_rings());
  EXPECT_EQ(other.Start(WholeRam(*vm_), 65536).code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(source_->Stop().ok());
  EXPECT_TRUE(source_->Stop().ok());
}

}  // namespace
}  // namespace converge
