#include "engine/device_session.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "iommu/uapi_compat.h"
#include "sim/emulated_kernel.h"
#include "sim/vfio_device.h"

namespace converge {
namespace {

using S = MigState;

// Records every MIG_DEVICE_STATE SET (device fd, target) in order.
class SetRecordingKernel final : public ForwardingKernel {
 public:
  using ForwardingKernel::ForwardingKernel;
  std::vector<std::pair<int, S>> sets() const {
    std::lock_guard<std::mutex> lock(mu_);
    return sets_;
  }

 protected:
  Result<int> DoIoctl(int fd, unsigned long request, void* arg) override {
    if (request == VFIO_DEVICE_FEATURE) {
      vfio_device_feature hdr;
      std::memcpy(&hdr, arg, sizeof hdr);
      if ((hdr.flags & VFIO_DEVICE_FEATURE_MASK) ==
              VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE &&
          (hdr.flags & VFIO_DEVICE_FEATURE_SET)) {
        vfio_device_feature_mig_state mig;
        std::memcpy(&mig, static_cast<char*>(arg) + sizeof hdr, sizeof mig);
        std::lock_guard<std::mutex> lock(mu_);
        sets_.emplace_back(fd, static_cast<S>(mig.device_state));
      }
    }
    return ForwardingKernel::DoIoctl(fd, request, arg);
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::pair<int, S>> sets_;
};

sim::MigState Sim(S s) { return static_cast<sim::MigState>(s); }

class DeviceSessionTest : public ::testing::Test {
 protected:
  // Adds an emulated device; returns its fd.
  int AddDevice(sim::VfioDeviceOptions options = {}) {
    options.precopy_initial_bytes = 256 << 10;
    options.stop_copy_bytes = 64 << 10;
    auto dev = sim::EmulatedVfioDevice::Create(emulated_, options);
    devices_.push_back(dev);
    return emulated_.Install(dev);
  }
  std::unique_ptr<DeviceSession> OpenSession(int fd, std::string name) {
    Result<std::unique_ptr<DeviceSession>> s =
        DeviceSession::Open(kernel_, fd, std::move(name));
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(*s) : nullptr;
  }

  sim::EmulatedKernel emulated_;
  SetRecordingKernel kernel_{emulated_};
  std::vector<std::shared_ptr<sim::EmulatedVfioDevice>> devices_;
};

TEST_F(DeviceSessionTest, DiscoversCapabilities) {
  struct Case {
    uint64_t flags;
    bool dma_logging, data_size;
  };
  const Case cases[] = {
      {kMigrationStopCopy, false, false},
      {kMigrationStopCopy | kMigrationP2p, true, false},
      {kMigrationStopCopy | kMigrationPreCopy, false, true},
      {kMigrationStopCopy | kMigrationP2p | kMigrationPreCopy, true, true},
  };
  for (const Case& c : cases) {
    sim::VfioDeviceOptions o;
    o.migration_flags = c.flags;
    o.dma_logging = c.dma_logging;
    o.mig_data_size = c.data_size;
    auto session = OpenSession(AddDevice(o), "dev");
    ASSERT_NE(session, nullptr);
    const DeviceCapabilities& caps = session->capabilities();
    EXPECT_EQ(caps.migration_flags, c.flags);
    EXPECT_EQ(caps.p2p, (c.flags & kMigrationP2p) != 0);
    EXPECT_EQ(caps.pre_copy, (c.flags & kMigrationPreCopy) != 0);
    EXPECT_EQ(caps.dma_logging, c.dma_logging);
    EXPECT_EQ(caps.mig_data_size, c.data_size);
    EXPECT_EQ(session->state(), S::kRunning);
    Result<uint64_t> size = session->QueryStopCopyBytes();
    if (c.data_size) {
      ASSERT_TRUE(size.ok()) << size.status().ToString();
      EXPECT_GT(*size, 0u);
    } else {
      EXPECT_EQ(size.status().code(), StatusCode::kNotSupported);
    }
  }
}

TEST_F(DeviceSessionTest, DeviceWithoutMigrationIsNotSupported) {
  sim::VfioDeviceOptions o;
  o.migration_flags = 0;
  Result<std::unique_ptr<DeviceSession>> s =
      DeviceSession::Open(kernel_, AddDevice(o), "plain");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kNotSupported);
  EXPECT_NE(s.status().message().find("plain"), std::string::npos);
}

TEST_F(DeviceSessionTest, PreCopyDataFdLifetime) {
  auto session = OpenSession(AddDevice(), "nic0");
  ASSERT_NE(session, nullptr);
  EXPECT_EQ(session->data_fd(), -1);
  EXPECT_EQ(session->QueryPrecopyInfo().status().code(),
            StatusCode::kFailedPrecondition);
  const size_t installed = emulated_.num_installed();

  ASSERT_TRUE(session->Transition(S::kPreCopy).ok());
  const int fd = session->data_fd();
  ASSERT_GE(fd, 0);
  EXPECT_EQ(emulated_.num_installed(), installed + 1);
  Result<DevicePrecopyInfo> info = session->QueryPrecopyInfo();
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->initial_bytes, 256u << 10);

  // Reading drains initial_bytes.
  std::vector<char> buf(64 << 10);
  uint64_t read = 0;
  while (read < (64u << 10)) {
    Result<size_t> n = kernel_.Read(fd, buf.data(), buf.size());
    if (!n.ok() && n.status().code() == StatusCode::kUnavailable) {
      std::this_thread::yield();  // the device thread has not written yet
      continue;
    }
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    read += *n;
  }
  info = session->QueryPrecopyInfo();
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->initial_bytes, (256u << 10) - read);

  // One saving session: STOP_COPY keeps the same fd.
  ASSERT_TRUE(session->Transition(S::kPreCopyP2p).ok());
  EXPECT_EQ(session->data_fd(), fd);
  ASSERT_TRUE(session->Transition(S::kStopCopy).ok());
  EXPECT_EQ(session->data_fd(), fd);
  EXPECT_EQ(session->QueryPrecopyInfo().status().code(),
            StatusCode::kFailedPrecondition);

  // The refused arc fails before any ioctl and keeps the session.
  size_t sets = kernel_.sets().size();
  Status refused = session->Transition(S::kPreCopy);
  EXPECT_EQ(refused.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(kernel_.sets().size(), sets);
  EXPECT_EQ(devices_[0]->hang_attempts(), 0u);
  EXPECT_EQ(session->data_fd(), fd);

  ASSERT_TRUE(session->Transition(S::kStop).ok());
  EXPECT_EQ(session->data_fd(), -1);
  EXPECT_EQ(emulated_.num_installed(), installed);
}

TEST_F(DeviceSessionTest, PreCopyBackToRunningClosesTheFd) {
  auto session = OpenSession(AddDevice(), "nic0");
  ASSERT_NE(session, nullptr);
  const size_t installed = emulated_.num_installed();
  ASSERT_TRUE(session->Transition(S::kPreCopy).ok());
  ASSERT_GE(session->data_fd(), 0);
  ASSERT_TRUE(session->Transition(S::kRunning).ok());
  EXPECT_EQ(session->data_fd(), -1);
  EXPECT_EQ(emulated_.num_installed(), installed);
}

TEST_F(DeviceSessionTest, SessionCloseReleasesTheFd) {
  const size_t before = emulated_.num_installed();
  {
    auto session = OpenSession(AddDevice(), "nic0");
    ASSERT_NE(session, nullptr);
    ASSERT_TRUE(session->Transition(S::kPreCopy).ok());
    EXPECT_EQ(emulated_.num_installed(), before + 2);  // device + data_fd
  }
  EXPECT_EQ(emulated_.num_installed(), before + 1);
}

// Every device reaches its P2P state before any device stops.
TEST_F(DeviceSessionTest, MultiDeviceP2pOrdering) {
  std::vector<std::unique_ptr<DeviceSession>> owned;
  std::vector<DeviceSession*> sessions;
  for (int i = 0; i < 3; ++i) {
    owned.push_back(OpenSession(AddDevice(), "dev" + std::to_string(i)));
    ASSERT_NE(owned.back(), nullptr);
    sessions.push_back(owned.back().get());
  }
  // dev0 and dev1 pre-copy; dev2 stays RUNNING.
  ASSERT_TRUE(sessions[0]->Transition(S::kPreCopy).ok());
  ASSERT_TRUE(sessions[1]->Transition(S::kPreCopy).ok());
  const size_t first_set = kernel_.sets().size();

  ASSERT_TRUE(MoveDevicesToStop(sessions, S::kStopCopy).ok());
  std::vector<std::pair<int, S>> sets = kernel_.sets();
  sets.erase(sets.begin(), sets.begin() + static_cast<long>(first_set));
  ASSERT_EQ(sets.size(), 6u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(sets[i].second, i < 2 ? S::kPreCopyP2p : S::kRunningP2p) << i;
    EXPECT_EQ(sets[i + 3].second, S::kStopCopy) << i;
  }
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(devices_[i]->state(), sim::MigState::kStopCopy);
    EXPECT_GE(sessions[i]->data_fd(), 0);
  }
  // The device that was RUNNING went to RUNNING_P2P first, not straight
  // to STOP.
  auto arcs = devices_[2]->arcs();
  ASSERT_FALSE(arcs.empty());
  EXPECT_EQ(arcs.front().second, sim::MigState::kRunningP2p);
}

// One device fails while the others are in (or on their way to) their P2P
// states: every device goes back to RUNNING, the data sessions close, and
// no device ever stopped.
TEST_F(DeviceSessionTest, OneFailureReturnsEveryDeviceToRunning) {
  struct Case {
    size_t fail_device;
    S fail_from, fail_to;
    bool enter_error;
  };
  const Case cases[] = {
      // The first device to leave P2P fails; the others wait in P2P.
      {0, S::kPreCopyP2p, S::kStopCopy, false},
      {0, S::kPreCopyP2p, S::kStopCopy, true},
      // A device fails to quiesce after dev0 already did.
      {1, S::kPreCopy, S::kPreCopyP2p, false},
      {1, S::kPreCopy, S::kPreCopyP2p, true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(MigStateName(c.fail_from)) + " -> " +
                 std::string(MigStateName(c.fail_to)));
    std::vector<std::unique_ptr<DeviceSession>> owned;
    std::vector<DeviceSession*> sessions;
    size_t base = devices_.size();
    for (int i = 0; i < 3; ++i) {
      owned.push_back(OpenSession(AddDevice(), "dev" + std::to_string(i)));
      ASSERT_NE(owned.back(), nullptr);
      sessions.push_back(owned.back().get());
      ASSERT_TRUE(sessions.back()->Transition(S::kPreCopy).ok());
    }
    devices_[base + c.fail_device]->InjectArcFailure(Sim(c.fail_from), Sim(c.fail_to),
                                         EIO, c.enter_error);
    Status s = MoveDevicesToStop(sessions, S::kStopCopy);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.sys_errno(), EIO);
    EXPECT_NE(s.message().find("dev" + std::to_string(c.fail_device)),
              std::string::npos)
        << s.ToString();
    EXPECT_NE(s.message().find("every device returned to RUNNING"),
              std::string::npos)
        << s.ToString();
    for (size_t i = 0; i < 3; ++i) {
      EXPECT_EQ(devices_[base + i]->state(), sim::MigState::kRunning) << i;
      EXPECT_EQ(sessions[i]->state(), S::kRunning) << i;
      EXPECT_EQ(sessions[i]->data_fd(), -1) << i;
      // No device ever stopped.
      for (auto arc : devices_[base + i]->arcs()) {
        EXPECT_NE(arc.second, sim::MigState::kStop) << i;
        EXPECT_NE(arc.second, sim::MigState::kStopCopy) << i;
      }
    }
  }
}

}  // namespace
}  // namespace converge
