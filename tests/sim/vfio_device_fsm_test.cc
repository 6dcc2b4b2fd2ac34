#include <linux/vfio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "iommu/uapi_compat.h"
#include "sim/emulated_kernel.h"
#include "sim/vfio_device.h"
#include "sim/vfio_migration_fsm.h"

namespace converge::sim {
namespace {

using S = MigState;
constexpr uint64_t kStopCopy = VFIO_MIGRATION_STOP_COPY;
constexpr uint64_t kP2p = VFIO_MIGRATION_P2P;
constexpr uint64_t kPreCopy = VFIO_MIGRATION_PRE_COPY;

Result<int> Feature(Kernel& kernel, int fd, uint32_t flags, void* payload,
                    uint32_t payload_bytes,
                    std::optional<uint32_t> argsz = std::nullopt) {
  std::vector<uint64_t> buf(1 + (payload_bytes + 7) / 8);
  auto* f = reinterpret_cast<vfio_device_feature*>(buf.data());
  f->argsz = argsz.value_or(8 + payload_bytes);
  f->flags = flags;
  if (payload_bytes) std::memcpy(f->data, payload, payload_bytes);
  Result<int> r = kernel.Ioctl(fd, VFIO_DEVICE_FEATURE, f);
  if (payload_bytes) std::memcpy(payload, f->data, payload_bytes);
  return r;
}

// SET MIG_DEVICE_STATE; returns the data_fd (or -1).
Result<int> SetState(Kernel& kernel, int fd, MigState s) {
  vfio_device_feature_mig_state mig{static_cast<uint32_t>(s), 12345};
  Result<int> r =
      Feature(kernel, fd,
              VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
              &mig, sizeof mig);
  if (!r.ok()) {
    EXPECT_EQ(mig.data_fd, -1) << "failed SET must return data_fd -1";
    return r.status();
  }
  return mig.data_fd;
}

MigState GetState(Kernel& kernel, int fd) {
  vfio_device_feature_mig_state mig{99, 12345};
  Result<int> r =
      Feature(kernel, fd,
              VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
              &mig, sizeof mig);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(mig.data_fd, -1);
  return static_cast<MigState>(mig.device_state);
}

// The table of uapi.md, typed in independently of sim/: next step for
// [from][to], states 1..7 (STOP, RUNNING, STOP_COPY, RESUMING, RUNNING_P2P,
// PRE_COPY, PRE_COPY_P2P); 0 is ERROR.
constexpr int kTable[8][8] = {
    {0, 0, 0, 0, 0, 0, 0, 0},
    /* STOP */ {0, 1, 5, 3, 4, 5, 5, 5},
    /* RUNNING */ {0, 5, 2, 5, 5, 5, 6, 5},
    /* STOP_COPY */ {0, 1, 1, 3, 1, 1, 0, 0},
    /* RESUMING */ {0, 1, 1, 1, 4, 1, 1, 1},
    /* RUNNING_P2P */ {0, 1, 2, 1, 1, 5, 2, 7},
    /* PRE_COPY */ {0, 2, 2, 7, 2, 2, 6, 7},
    /* PRE_COPY_P2P */ {0, 5, 5, 3, 5, 5, 6, 7},
};

bool Supported(int s, uint64_t flags) {
  switch (s) {
    case 1: case 2: case 3: case 4: return true;
    case 5: return flags & kP2p;
    case 6: return flags & kPreCopy;
    case 7: return (flags & kP2p) && (flags & kPreCopy);
    default: return false;
  }
}

struct Expected {
  enum Kind { kOk, kInvalid, kHang, kResumeRejected } kind = kOk;
  std::vector<std::pair<int, int>> arcs;
  int final_state = 0;
};

// The walk the kernel performs, written from uapi.md's prose.
Expected Walk(int from, int to, uint64_t flags) {
  Expected e;
  e.final_state = from;
  if (from == to) return e;
  if (!Supported(from, flags) || !Supported(to, flags)) {
    e.kind = Expected::kInvalid;
    return e;
  }
  int cur = from;
  while (cur != to) {
    int next = kTable[cur][to];
    int guard = 0;
    while (!Supported(next, flags)) {
      if (next == 0 || ++guard > 8) {
        e.kind = Expected::kHang;
        return e;
      }
      next = kTable[next][to];
    }
    if (cur == 4 && next == 1) {  // RESUMING -> STOP without any data
      e.kind = Expected::kResumeRejected;
      e.final_state = 0;
      return e;
    }
    e.arcs.emplace_back(cur, next);
    cur = next;
    e.final_state = cur;
  }
  return e;
}

bool OpensFd(int from, int to) {
  return (from == 2 && to == 6) || (from == 5 && to == 7) ||
         (from == 1 && to == 3) || (from == 1 && to == 4);
}

struct Rig {
  explicit Rig(uint64_t flags) {
    VfioDeviceOptions o;
    o.migration_flags = flags;
    o.precopy_initial_bytes = 64 << 10;
    o.stop_copy_bytes = 64 << 10;
    device = EmulatedVfioDevice::Create(kernel, o);
    fd = kernel.Install(device);
  }
  ~Rig() {
    for (int d : data_fds) (void)kernel.Close(d);
    (void)kernel.Close(fd);
  }
  EmulatedKernel kernel;
  std::shared_ptr<EmulatedVfioDevice> device;
  int fd;
  std::vector<int> data_fds;
};

class VfioDeviceFsmTest : public ::testing::TestWithParam<uint64_t> {};

TEST_P(VfioDeviceFsmTest, EveryArcMatchesTheKernelTable) {
  const uint64_t flags = GetParam();
  for (int from = 1; from <= 7; ++from) {
    if (!Supported(from, flags)) continue;
    for (int to = 0; to <= 7; ++to) {
      SCOPED_TRACE("flags " + std::to_string(flags) + " from " +
                   std::string(MigStateName(S(from))) + " to " +
                   std::string(MigStateName(S(to))));
      Rig rig(flags);
      Result<int> reach = SetState(rig.kernel, rig.fd, S(from));
      ASSERT_TRUE(reach.ok()) << reach.status().ToString();
      if (*reach >= 0) rig.data_fds.push_back(*reach);
      ASSERT_EQ(GetState(rig.kernel, rig.fd), S(from));
      size_t arcs_before = rig.device->arcs().size();

      Expected e = Walk(from, to, flags);
      Result<int> r = SetState(rig.kernel, rig.fd, S(to));
      std::vector<std::pair<S, S>> all = rig.device->arcs();
      std::vector<std::pair<int, int>> taken;
      for (size_t i = arcs_before; i < all.size(); ++i) {
        taken.emplace_back(static_cast<int>(all[i].first),
                           static_cast<int>(all[i].second));
      }
      switch (e.kind) {
        case Expected::kOk: {
          ASSERT_TRUE(r.ok()) << r.status().ToString();
          EXPECT_EQ(taken, e.arcs);
          EXPECT_EQ(GetState(rig.kernel, rig.fd), S(to));
          bool fd_expected = !e.arcs.empty() &&
                             OpensFd(e.arcs.back().first, e.arcs.back().second);
          EXPECT_EQ(*r >= 0, fd_expected);
          if (*r >= 0) {
            EXPECT_NE(rig.kernel.Lookup(*r), nullptr);
            rig.data_fds.push_back(*r);
          }
          EXPECT_EQ(rig.device->hang_attempts(), 0u);
          break;
        }
        case Expected::kInvalid:
          ASSERT_FALSE(r.ok());
          EXPECT_EQ(r.status().sys_errno(), EINVAL);
          EXPECT_TRUE(taken.empty());
          EXPECT_EQ(GetState(rig.kernel, rig.fd), S(from));
          break;
        case Expected::kHang:
          ASSERT_FALSE(r.ok());
          EXPECT_EQ(r.status().sys_errno(), EDEADLK);
          EXPECT_NE(r.status().message().find("kernel would hang"),
                    std::string::npos);
          EXPECT_EQ(rig.device->hang_attempts(), 1u);
          EXPECT_EQ(GetState(rig.kernel, rig.fd), S(from));
          break;
        case Expected::kResumeRejected:
          ASSERT_FALSE(r.ok());
          EXPECT_EQ(r.status().sys_errno(), EINVAL);
          EXPECT_EQ(GetState(rig.kernel, rig.fd), MigState::kError);
          break;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(FlagSets, VfioDeviceFsmTest,
                         ::testing::Values(kStopCopy, kStopCopy | kP2p,
                                           kStopCopy | kPreCopy,
                                           kStopCopy | kP2p | kPreCopy));

TEST(VfioDeviceFsmTest, SkipLoopPathsSpelledOut) {
  struct Case {
    uint64_t flags;
    S from, to;
    std::vector<std::pair<S, S>> arcs;
  };
  const Case cases[] = {
      {kStopCopy, S::kRunning, S::kStopCopy,
       {{S::kRunning, S::kStop}, {S::kStop, S::kStopCopy}}},
      {kStopCopy | kP2p, S::kRunning, S::kStopCopy,
       {{S::kRunning, S::kRunningP2p},
        {S::kRunningP2p, S::kStop},
        {S::kStop, S::kStopCopy}}},
      {kStopCopy | kPreCopy, S::kStop, S::kPreCopy,
       {{S::kStop, S::kRunning}, {S::kRunning, S::kPreCopy}}},
      // PRE_COPY_P2P is skipped: straight on to STOP_COPY.
      {kStopCopy | kPreCopy, S::kPreCopy, S::kStopCopy,
       {{S::kPreCopy, S::kStopCopy}}},
      {kStopCopy | kPreCopy, S::kPreCopy, S::kStop,
       {{S::kPreCopy, S::kRunning}, {S::kRunning, S::kStop}}},
      {kStopCopy | kP2p | kPreCopy, S::kPreCopy, S::kStopCopy,
       {{S::kPreCopy, S::kPreCopyP2p}, {S::kPreCopyP2p, S::kStopCopy}}},
  };
  for (const Case& c : cases) {
    Rig rig(c.flags);
    Result<int> reach = SetState(rig.kernel, rig.fd, c.from);
    ASSERT_TRUE(reach.ok());
    if (*reach >= 0) rig.data_fds.push_back(*reach);
    size_t before = rig.device->arcs().size();
    Result<int> r = SetState(rig.kernel, rig.fd, c.to);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    if (*r >= 0) rig.data_fds.push_back(*r);
    auto all = rig.device->arcs();
    std::vector<std::pair<S, S>> taken(all.begin() + before, all.end());
    EXPECT_EQ(taken, c.arcs) << MigStateName(c.from) << " -> "
                             << MigStateName(c.to);
  }
}

TEST(VfioDeviceFsmTest, PreCopyToStopCopyKeepsTheSameDataFd) {
  Rig rig(kStopCopy | kP2p | kPreCopy);
  Result<int> fd = SetState(rig.kernel, rig.fd, S::kPreCopy);
  ASSERT_TRUE(fd.ok());
  ASSERT_GE(*fd, 0);
  rig.data_fds.push_back(*fd);
  Result<int> sc = SetState(rig.kernel, rig.fd, S::kStopCopy);
  ASSERT_TRUE(sc.ok());
  EXPECT_EQ(*sc, -1);
  EXPECT_NE(rig.kernel.Lookup(*fd), nullptr);
}

TEST(VfioDeviceFsmTest, ErrorCannotBeRequestedAndResetLeavesIt) {
  Rig rig(kStopCopy | kP2p | kPreCopy);
  Result<int> r = SetState(rig.kernel, rig.fd, S::kError);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().sys_errno(), EINVAL);
  rig.device->InjectArcFailure(S::kRunning, S::kRunningP2p, EIO, true);
  r = SetState(rig.kernel, rig.fd, S::kStop);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().sys_errno(), EIO);
  EXPECT_EQ(GetState(rig.kernel, rig.fd), S::kError);
  r = SetState(rig.kernel, rig.fd, S::kRunning);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().sys_errno(), EINVAL);
  ASSERT_TRUE(rig.kernel.Ioctl(rig.fd, VFIO_DEVICE_RESET, nullptr).ok());
  EXPECT_EQ(GetState(rig.kernel, rig.fd), S::kRunning);
}

TEST(VfioDeviceFsmTest, InjectedFailureLeavesTheDeviceWhereItWas) {
  Rig rig(kStopCopy | kP2p);
  rig.device->InjectArcFailure(S::kRunningP2p, S::kStop, EBUSY, false);
  Result<int> r = SetState(rig.kernel, rig.fd, S::kStopCopy);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().sys_errno(), EBUSY);
  EXPECT_EQ(GetState(rig.kernel, rig.fd), S::kRunningP2p);
  // One-shot: the retry succeeds.
  r = SetState(rig.kernel, rig.fd, S::kStopCopy);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_GE(*r, 0);
  rig.data_fds.push_back(*r);
  EXPECT_EQ(GetState(rig.kernel, rig.fd), S::kStopCopy);
}

TEST(VfioDeviceFsmTest, OutOfRangeStateIsEinval) {
  Rig rig(kStopCopy | kP2p | kPreCopy);
  Result<int> r = SetState(rig.kernel, rig.fd, static_cast<S>(8));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().sys_errno(), EINVAL);
}

TEST(VfioDeviceFsmTest, ArgszAndFlagErrors) {
  Rig rig(kStopCopy | kP2p | kPreCopy);
  constexpr uint32_t kMig = VFIO_DEVICE_FEATURE_MIGRATION;
  constexpr uint32_t kState = VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE;
  constexpr uint32_t G = VFIO_DEVICE_FEATURE_GET;
  constexpr uint32_t St = VFIO_DEVICE_FEATURE_SET;
  constexpr uint32_t P = VFIO_DEVICE_FEATURE_PROBE;
  struct Case {
    const char* name;
    uint32_t flags;
    std::optional<uint32_t> argsz;
    int want;  // errno, or -1 for success
  };
  const Case cases[] = {
      {"argsz below header", G | kMig, 4, EINVAL},
      {"argsz without payload", G | kMig, 8, EINVAL},
      {"argsz short payload", G | kState, 12, EINVAL},
      {"GET and SET", G | St | kState, std::nullopt, EINVAL},
      {"unknown flag bit", G | kMig | (1u << 19), std::nullopt, EINVAL},
      {"neither GET nor SET", kMig, std::nullopt, EINVAL},
      {"SET on GET-only feature", St | kMig, std::nullopt, EINVAL},
      {"PROBE alone", P | kMig, std::nullopt, -1},
      {"PROBE GET", P | G | kMig, std::nullopt, -1},
      {"PROBE GET SET", P | G | St | kState, std::nullopt, -1},
      {"PROBE SET on GET-only", P | St | kMig, std::nullopt, EINVAL},
      {"PROBE ignores argsz", P | G | kMig, 8, -1},
      {"GET", G | kMig, std::nullopt, -1},
  };
  for (const Case& c : cases) {
    uint64_t payload = 0xdead;
    Result<int> r = Feature(rig.kernel, rig.fd, c.flags, &payload, 8, c.argsz);
    if (c.want < 0) {
      EXPECT_TRUE(r.ok()) << c.name << ": " << r.status().ToString();
    } else {
      ASSERT_FALSE(r.ok()) << c.name;
      EXPECT_EQ(r.status().sys_errno(), c.want) << c.name;
    }
  }
  uint64_t mig_flags = 0;
  ASSERT_TRUE(Feature(rig.kernel, rig.fd, G | kMig, &mig_flags, 8).ok());
  EXPECT_EQ(mig_flags, kStopCopy | kP2p | kPreCopy);
  // A PROBE does not touch the payload.
  uint64_t untouched = 0xdead;
  ASSERT_TRUE(Feature(rig.kernel, rig.fd, P | G | kMig, &untouched, 8).ok());
  EXPECT_EQ(untouched, 0xdeadu);
}

TEST(VfioDeviceFsmTest, MissingFeaturesAreEnotty) {
  EmulatedKernel kernel;
  VfioDeviceOptions o;
  o.migration_flags = 0;
  o.dma_logging = false;
  o.mig_data_size = false;
  o.precopy_info_v2 = false;
  auto device = EmulatedVfioDevice::Create(kernel, o);
  int fd = kernel.Install(device);
  const uint32_t features[] = {
      VFIO_DEVICE_FEATURE_MIGRATION, VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
      VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
      VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP,
      VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT,
      VFIO_DEVICE_FEATURE_MIG_DATA_SIZE,
      VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2, 3, 0xffff};
  for (uint32_t feature : features) {
    uint64_t payload[4] = {};
    Result<int> r = Feature(kernel, fd, VFIO_DEVICE_FEATURE_PROBE | feature,
                            payload, sizeof payload);
    ASSERT_FALSE(r.ok()) << feature;
    EXPECT_EQ(r.status().sys_errno(), ENOTTY) << feature;
    EXPECT_EQ(r.status().code(), StatusCode::kNotSupported);
  }
  Result<int> other = kernel.Ioctl(fd, VFIO_DEVICE_GET_INFO, nullptr);
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.status().sys_errno(), ENOTTY);
  ASSERT_TRUE(kernel.Close(fd).ok());
}

TEST(VfioDeviceFsmTest, MigNextStateNamesItsErrors) {
  Result<MigState> r =
      MigNextState(S::kRunning, S::kPreCopy, kStopCopy | kP2p);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("RUNNING -> PRE_COPY"),
            std::string::npos);
  EXPECT_EQ(MigStateName(static_cast<S>(42)), "INVALID");
}

}  // namespace
}  // namespace converge::sim
