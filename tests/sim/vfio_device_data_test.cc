#include <fcntl.h>
#include <linux/vfio.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <xxhash.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "iommu/uapi_compat.h"
#include "sim/emulated_kernel.h"
#include "sim/vfio_device.h"

namespace converge::sim {
namespace {

using S = MigState;

Result<int> Feature(Kernel& kernel, int fd, uint32_t flags, void* payload,
                    uint32_t payload_bytes) {
  std::vector<uint64_t> buf(1 + (payload_bytes + 7) / 8);
  auto* f = reinterpret_cast<vfio_device_feature*>(buf.data());
  f->argsz = 8 + payload_bytes;
  f->flags = flags;
  if (payload_bytes) std::memcpy(f->data, payload, payload_bytes);
  Result<int> r = kernel.Ioctl(fd, VFIO_DEVICE_FEATURE, f);
  if (payload_bytes) std::memcpy(payload, f->data, payload_bytes);
  return r;
}

Result<int> SetState(Kernel& kernel, int fd, MigState s) {
  vfio_device_feature_mig_state mig{static_cast<uint32_t>(s), -1};
  CONVERGE_RETURN_IF_ERROR(Feature(
      kernel, fd, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
      &mig, sizeof mig));
  return mig.data_fd;
}

Result<vfio_precopy_info> PrecopyInfo(Kernel& kernel, int data_fd,
                                      uint32_t argsz = 24) {
  vfio_precopy_info info{};
  info.argsz = argsz;
  CONVERGE_RETURN_IF_ERROR(
      kernel.Ioctl(data_fd, VFIO_MIG_GET_PRECOPY_INFO, &info));
  return info;
}

Result<uint64_t> DataSize(Kernel& kernel, int fd) {
  vfio_device_feature_mig_data_size size{};
  CONVERGE_RETURN_IF_ERROR(Feature(
      kernel, fd, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DATA_SIZE,
      &size, sizeof size));
  return static_cast<uint64_t>(size.stop_copy_length);
}

// Reads up to max_bytes into out, waiting for data while the pipe is empty;
// returns false at EOF.
bool ReadSome(Kernel& kernel, int fd, std::vector<uint8_t>& out,
              size_t max_bytes = 1 << 20) {
  std::vector<uint8_t> buf(max_bytes);
  for (;;) {
    Result<size_t> n = kernel.Read(fd, buf.data(), buf.size());
    if (n.ok()) {
      out.insert(out.end(), buf.begin(), buf.begin() + *n);
      return *n != 0;
    }
    EXPECT_EQ(n.status().code(), StatusCode::kUnavailable)
        << n.status().ToString();
    if (n.status().code() != StatusCode::kUnavailable) return false;
    pollfd p{fd, POLLIN, 0};
    ::poll(&p, 1, 1000);
  }
}

void ReadToEof(Kernel& kernel, int fd, std::vector<uint8_t>& out) {
  while (ReadSome(kernel, fd, out)) {
  }
}

void WriteAll(Kernel& kernel, int fd, const std::vector<uint8_t>& bytes,
              size_t chunk) {
  size_t done = 0;
  while (done < bytes.size()) {
    size_t n = std::min(chunk, bytes.size() - done);
    Result<size_t> w = kernel.Write(fd, bytes.data() + done, n);
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    done += *w;
  }
}

VfioDeviceOptions SmallDevice(uint64_t seed = 7) {
  VfioDeviceOptions o;
  o.precopy_initial_bytes = 1 << 20;
  o.stop_copy_bytes = 2 << 20;
  o.seed = seed;
  return o;
}

struct Rig {
  explicit Rig(VfioDeviceOptions o) {
    device = EmulatedVfioDevice::Create(kernel, std::move(o));
    fd = kernel.Install(device);
  }
  EmulatedKernel kernel;
  std::shared_ptr<EmulatedVfioDevice> device;
  int fd;
};

// STOP -> STOP_COPY without precopy, everything read to EOF.
std::vector<uint8_t> SaveAll(Rig& rig) {
  std::vector<uint8_t> stream;
  Result<int> data = SetState(rig.kernel, rig.fd, S::kStopCopy);
  EXPECT_TRUE(data.ok() && *data >= 0);
  if (!data.ok()) return stream;
  ReadToEof(rig.kernel, *data, stream);
  EXPECT_TRUE(rig.kernel.Close(*data).ok());
  EXPECT_TRUE(SetState(rig.kernel, rig.fd, S::kStop).ok());
  return stream;
}

// The payload digest from its definition: XXH3-64 over the little-endian
// XXH3-64s of the payload's 4 KiB blocks (the last may be short).
uint64_t PayloadHash(const std::vector<uint8_t>& stream) {
  const size_t payload = stream.size() - 24;
  std::vector<uint8_t> chain;
  for (size_t at = 0; at < payload; at += 4096) {
    uint64_t h = XXH3_64bits(stream.data() + at,
                             std::min<size_t>(4096, payload - at));
    for (int i = 0; i < 8; ++i) chain.push_back(static_cast<uint8_t>(h >> (8 * i)));
  }
  return XXH3_64bits(chain.data(), chain.size());
}

TEST(VfioDeviceDataTest, SaveRestoreRoundTripThroughPipesThread) {
  Rig src(SmallDevice());
  Rig dst(SmallDevice(99));
  Result<int> data = SetState(src.kernel, src.fd, S::kPreCopy);
  ASSERT_TRUE(data.ok());
  ASSERT_GE(*data, 0);
  std::vector<uint8_t> stream;
  for (;;) {
    Result<vfio_precopy_info> info = PrecopyInfo(src.kernel, *data);
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    if (info->initial_bytes == 0) break;
    ReadSome(src.kernel, *data, stream, 100000);
  }
  EXPECT_EQ(stream.size(), 1u << 20);
  src.device->DirtyState(300000);
  Result<vfio_precopy_info> info = PrecopyInfo(src.kernel, *data);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->initial_bytes, 0u);
  EXPECT_EQ(info->dirty_bytes, 300000u);
  while (PrecopyInfo(src.kernel, *data)->dirty_bytes > 0) {
    ReadSome(src.kernel, *data, stream, 65536);
  }
  Result<int> sc = SetState(src.kernel, src.fd, S::kStopCopy);
  ASSERT_TRUE(sc.ok());
  EXPECT_EQ(*sc, -1);
  ReadToEof(src.kernel, *data, stream);
  ASSERT_EQ(stream.size(), (1u << 20) + 300000u + (2u << 20) + 24u);
  EXPECT_TRUE(src.device->stream_complete());
  EXPECT_EQ(src.device->stream_hash(), PayloadHash(stream));
  ASSERT_TRUE(src.kernel.Close(*data).ok());
  ASSERT_TRUE(SetState(src.kernel, src.fd, S::kStop).ok());
  EXPECT_EQ(src.device->stream_hash(), PayloadHash(stream));
  EXPECT_EQ(src.device->stream_bytes(), stream.size() - 24);

  Result<int> wfd = SetState(dst.kernel, dst.fd, S::kResuming);
  ASSERT_TRUE(wfd.ok());
  ASSERT_GE(*wfd, 0);
  WriteAll(dst.kernel, *wfd, stream, 7777);
  ASSERT_TRUE(dst.kernel.Close(*wfd).ok());
  Result<int> stop = SetState(dst.kernel, dst.fd, S::kStop);
  ASSERT_TRUE(stop.ok()) << stop.status().ToString();
  EXPECT_TRUE(dst.device->restored_ok());
  EXPECT_EQ(dst.device->restored_hash(), src.device->stream_hash());
  EXPECT_EQ(dst.device->restored_bytes(), stream.size());
  EXPECT_EQ(src.device->hang_attempts(), 0u);
}

TEST(VfioDeviceDataTest, DamagedStreamsAreRejectedThread) {
  Rig src(SmallDevice());
  const std::vector<uint8_t> good = SaveAll(src);
  ASSERT_EQ(good.size(), (2u << 20) + 24u);
  struct Case {
    const char* name;
    std::vector<uint8_t> bytes;
  };
  std::vector<Case> cases;
  cases.push_back({"empty", {}});
  cases.push_back({"one byte short", {good.begin(), good.end() - 1}});
  cases.push_back({"no trailer", {good.begin(), good.end() - 24}});
  cases.push_back({"half", {good.begin(), good.begin() + good.size() / 2}});
  auto flipped = good;
  flipped[1000] ^= 1;
  cases.push_back({"payload bit flip", flipped});
  auto bad_trailer = good;
  bad_trailer.back() ^= 0x80;
  cases.push_back({"trailer hash flip", bad_trailer});
  auto extra = good;
  extra.push_back(0);
  cases.push_back({"extra byte", extra});
  for (const Case& c : cases) {
    Rig dst(SmallDevice());
    Result<int> wfd = SetState(dst.kernel, dst.fd, S::kResuming);
    ASSERT_TRUE(wfd.ok()) << c.name;
    WriteAll(dst.kernel, *wfd, c.bytes, 65536);
    Result<int> stop = SetState(dst.kernel, dst.fd, S::kStop);
    ASSERT_FALSE(stop.ok()) << c.name;
    EXPECT_EQ(stop.status().sys_errno(), EINVAL) << c.name;
    EXPECT_FALSE(dst.device->restored_ok()) << c.name;
    EXPECT_EQ(dst.device->state(), S::kError) << c.name;
    ASSERT_TRUE(dst.kernel.Close(*wfd).ok());
  }
  Rig dst(SmallDevice());
  Result<int> wfd = SetState(dst.kernel, dst.fd, S::kResuming);
  ASSERT_TRUE(wfd.ok());
  WriteAll(dst.kernel, *wfd, good, 1 << 20);
  EXPECT_TRUE(SetState(dst.kernel, dst.fd, S::kStop).ok());
  EXPECT_TRUE(dst.device->restored_ok());
  ASSERT_TRUE(dst.kernel.Close(*wfd).ok());
}

TEST(VfioDeviceDataTest, StreamIsDeterministicFromSeedAndMixThread) {
  Rig a(SmallDevice(5)), b(SmallDevice(5)), c(SmallDevice(6));
  std::vector<uint8_t> sa = SaveAll(a), sb = SaveAll(b), sc = SaveAll(c);
  EXPECT_EQ(sa, sb);
  EXPECT_NE(sa, sc);
  EXPECT_EQ(a.device->stream_hash(), PayloadHash(sa));
  // Copying into the pipe instead of vmsplice() changes nothing visible.
  VfioDeviceOptions copying = SmallDevice(5);
  copying.zero_copy_saving = false;
  Rig d(copying);
  EXPECT_EQ(SaveAll(d), sa);
  EXPECT_EQ(d.device->stream_hash(), a.device->stream_hash());
  VfioDeviceOptions zeros = SmallDevice();
  zeros.content.zero_fraction = 1.0;
  zeros.content.text_fraction = 0.0;
  Rig z(zeros);
  std::vector<uint8_t> sz = SaveAll(z);
  ASSERT_EQ(sz.size(), (2u << 20) + 24u);
  for (size_t i = 0; i + 24 < sz.size(); ++i) {
    ASSERT_EQ(sz[i], 0) << "byte " << i;
  }
}

TEST(VfioDeviceDataTest, PrecopyInfoTracksReadsAndTimeThread) {
  std::atomic<uint64_t> now_ns{1000};
  VfioDeviceOptions o = SmallDevice();
  o.precopy_initial_bytes = 100000;
  o.dirty_bytes_per_sec = 1000000;
  o.max_dirty_bytes = 2000000;
  o.clock_ns = [&] { return now_ns.load(); };
  Rig rig(o);
  Result<int> data = SetState(rig.kernel, rig.fd, S::kPreCopy);
  ASSERT_TRUE(data.ok());
  Result<vfio_precopy_info> info = PrecopyInfo(rig.kernel, *data);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->flags, 0u);
  EXPECT_EQ(info->initial_bytes, 100000u);
  EXPECT_EQ(info->dirty_bytes, 0u);

  now_ns += 500000000;  // 0.5 s at 1 MB/s
  info = PrecopyInfo(rig.kernel, *data);
  EXPECT_EQ(info->initial_bytes, 100000u);
  EXPECT_EQ(info->dirty_bytes, 500000u);

  std::vector<uint8_t> got;
  while (got.size() < 4096) ReadSome(rig.kernel, *data, got, 4096 - got.size());
  info = PrecopyInfo(rig.kernel, *data);
  EXPECT_EQ(info->initial_bytes, 100000u - 4096u);
  EXPECT_EQ(info->dirty_bytes, 500000u);

  now_ns += 1000000000000ull;  // long enough to hit the cap
  info = PrecopyInfo(rig.kernel, *data);
  EXPECT_EQ(info->dirty_bytes, 500000u + 2000000u);

  Result<uint64_t> size = DataSize(rig.kernel, rig.fd);
  ASSERT_TRUE(size.ok());
  EXPECT_EQ(*size, (2u << 20) + 24u + (100000u - 4096u) + 2500000u);

  // Drained: initial_bytes reaches 0 (what switchover-ack waits for).
  while (PrecopyInfo(rig.kernel, *data)->initial_bytes > 0) {
    ReadSome(rig.kernel, *data, got, 65536);
  }
  EXPECT_GE(got.size(), 100000u);
  ASSERT_TRUE(rig.kernel.Close(*data).ok());
}

TEST(VfioDeviceDataTest, PrecopyInfoErrors) {
  Rig rig(SmallDevice());
  Result<int> old = SetState(rig.kernel, rig.fd, S::kPreCopy);
  ASSERT_TRUE(old.ok());
  Result<vfio_precopy_info> bad = PrecopyInfo(rig.kernel, *old, 16);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().sys_errno(), EINVAL);
  int dummy = 0;
  Result<int> other = rig.kernel.Ioctl(*old, VFIO_DEVICE_GET_INFO, &dummy);
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.status().sys_errno(), ENOTTY);

  // Session ended: the old fd reads what was buffered, then EOF; in RUNNING
  // PRECOPY_INFO is EINVAL, and in a new session's PRE_COPY it is ENODEV.
  ASSERT_TRUE(SetState(rig.kernel, rig.fd, S::kRunning).ok());
  std::vector<uint8_t> rest;
  ReadToEof(rig.kernel, *old, rest);
  EXPECT_LE(rest.size(), 1u << 20);
  bad = PrecopyInfo(rig.kernel, *old);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().sys_errno(), EINVAL);
  Result<int> fresh = SetState(rig.kernel, rig.fd, S::kPreCopy);
  ASSERT_TRUE(fresh.ok());
  ASSERT_NE(*fresh, *old);
  bad = PrecopyInfo(rig.kernel, *old);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().sys_errno(), ENODEV);
  EXPECT_TRUE(PrecopyInfo(rig.kernel, *fresh).ok());

  ASSERT_TRUE(SetState(rig.kernel, rig.fd, S::kStopCopy).ok());
  bad = PrecopyInfo(rig.kernel, *fresh);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().sys_errno(), EINVAL);

  // The device is gone: ENODEV.
  ASSERT_TRUE(rig.kernel.Close(rig.fd).ok());
  rig.device.reset();
  bad = PrecopyInfo(rig.kernel, *fresh);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().sys_errno(), ENODEV);
  ASSERT_TRUE(rig.kernel.Close(*old).ok());
  ASSERT_TRUE(rig.kernel.Close(*fresh).ok());
}

TEST(VfioDeviceDataTest, MigDataSize) {
  Rig rig(SmallDevice());
  Result<uint64_t> size = DataSize(rig.kernel, rig.fd);
  ASSERT_TRUE(size.ok());
  EXPECT_EQ(*size, (2u << 20) + 24u);
  Result<int> data = SetState(rig.kernel, rig.fd, S::kPreCopy);
  ASSERT_TRUE(data.ok());
  rig.device->DirtyState(5000);
  size = DataSize(rig.kernel, rig.fd);
  EXPECT_EQ(*size, (2u << 20) + 24u + (1u << 20) + 5000u);
  ASSERT_TRUE(rig.kernel.Close(*data).ok());
}

TEST(VfioDeviceDataTest, ReinitReportedOnlyAfterOptIn) {
  VfioDeviceOptions o = SmallDevice();
  o.precopy_info_v2 = true;
  o.precopy_initial_bytes = 100000;
  {
    Rig rig(o);
    Result<int> data = SetState(rig.kernel, rig.fd, S::kPreCopy);
    ASSERT_TRUE(data.ok());
    rig.device->Reinitialize(1000);
    Result<vfio_precopy_info> info = PrecopyInfo(rig.kernel, *data);
    EXPECT_EQ(info->flags, 0u);
    EXPECT_EQ(info->initial_bytes, 100000u);
    EXPECT_EQ(info->dirty_bytes, 1000u);
    ASSERT_TRUE(rig.kernel.Close(*data).ok());
  }
  Rig rig(o);
  uint64_t none = 0;
  ASSERT_TRUE(Feature(rig.kernel, rig.fd,
                      VFIO_DEVICE_FEATURE_SET |
                          VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2,
                      &none, 0)
                  .ok());
  Result<int> data = SetState(rig.kernel, rig.fd, S::kPreCopy);
  ASSERT_TRUE(data.ok());
  rig.device->DirtyState(500);
  EXPECT_EQ(PrecopyInfo(rig.kernel, *data)->dirty_bytes, 500u);
  rig.device->Reinitialize(1000);
  Result<vfio_precopy_info> info = PrecopyInfo(rig.kernel, *data);
  EXPECT_EQ(info->flags, uint32_t{VFIO_PRECOPY_INFO_REINIT});
  EXPECT_EQ(info->initial_bytes, 100000u + 500u + 1000u);
  EXPECT_EQ(info->dirty_bytes, 0u);
  info = PrecopyInfo(rig.kernel, *data);
  EXPECT_EQ(info->flags, 0u);
  ASSERT_TRUE(rig.kernel.Close(*data).ok());
}

TEST(VfioDeviceDataTest, ReaderClosingEarlyDoesNotStallTheDeviceThread) {
  VfioDeviceOptions o = SmallDevice();
  o.precopy_initial_bytes = 8 << 20;  // more than a pipe holds
  Rig rig(o);
  Result<int> data = SetState(rig.kernel, rig.fd, S::kPreCopy);
  ASSERT_TRUE(data.ok());
  ASSERT_TRUE(rig.kernel.Close(*data).ok());
  ASSERT_TRUE(SetState(rig.kernel, rig.fd, S::kStopCopy).ok());
  ASSERT_TRUE(SetState(rig.kernel, rig.fd, S::kStop).ok());
  EXPECT_FALSE(rig.device->stream_complete());
}

TEST(VfioDeviceDataTest, DataFdIsAStreamAndCloseOnExec) {
  Rig rig(SmallDevice());
  Result<int> data = SetState(rig.kernel, rig.fd, S::kPreCopy);
  ASSERT_TRUE(data.ok());
  EXPECT_TRUE(::fcntl(*data, F_GETFD) & FD_CLOEXEC);
  EXPECT_TRUE(::fcntl(*data, F_GETFL) & O_NONBLOCK);
  char c;
  EXPECT_EQ(::pread(*data, &c, 1, 0), -1);
  EXPECT_EQ(errno, ESPIPE);
  ASSERT_TRUE(SetState(rig.kernel, rig.fd, S::kStopCopy).ok());
  EXPECT_FALSE(::fcntl(*data, F_GETFL) & O_NONBLOCK);  // STOP_COPY blocks
  ASSERT_TRUE(rig.kernel.Close(*data).ok());
}

}  // namespace
}  // namespace converge::sim
