// End to end through the emulated VFIO device (sim/vfio_device.h): source
// devices in PRE_COPY then STOP_COPY drained through io_uring and the TBB
// pipeline, the stream received into destination devices in RESUMING, whose
// RESUMING -> STOP validates every byte in order.

#include <poll.h>

#include <memory>
#include <vector>

#include <gtest/gtest.h>

#include "engine/vfio_feature.h"
#include "io/compress_pipeline.h"
#include "io/device_drain.h"
#include "io/receiver.h"
#include "io/stream_writer.h"
#include "sim/emulated_kernel.h"
#include "sim/vfio_device.h"

namespace converge {
namespace {

Result<int> SetState(Kernel& kernel, int fd, MigState state) {
  return SetMigDeviceState(kernel, fd, state, MigStateName(state));
}

struct Side {
  sim::EmulatedKernel kernel;
  std::vector<std::shared_ptr<sim::EmulatedVfioDevice>> devices;
  std::vector<int> fds;
};

void AddDevices(Side& side, int count) {
  for (int i = 0; i < count; ++i) {
    sim::VfioDeviceOptions o;
    o.precopy_initial_bytes = 1 << 20;
    o.stop_copy_bytes = 3 << 20;
    o.seed = uint64_t(i) + 40;
    side.devices.push_back(sim::EmulatedVfioDevice::Create(side.kernel, o));
    side.fds.push_back(side.kernel.Install(side.devices.back()));
  }
}

TEST(DeviceDrainTest, PipelineEmulatedDevicesPreCopyStopCopyResuming) {
  constexpr int kDevices = 4;
  Side src, dst;
  AddDevices(src, kDevices);
  AddDevices(dst, kDevices);
  StreamLayout layout;
  std::vector<DrainDevice> drain_devices;
  for (int i = 0; i < kDevices; ++i) {
    Result<int> data_fd = SetState(src.kernel, src.fds[i], MigState::kPreCopy);
    ASSERT_TRUE(data_fd.ok()) << data_fd.status().ToString();
    drain_devices.push_back({uint32_t(i), *data_fd, "vf" + std::to_string(i)});
    layout.devices.push_back({uint32_t(i), 0, drain_devices.back().name});
  }
  MemoryTransport wire;
  auto writer = StreamWriter::Create(wire, layout, {Codec::kLz4, 1}).value();
  auto drain = DeviceDrain::Create(drain_devices, DataPhase::kPreCopy).value();

  // PRE_COPY: drain what is there, ask PRECOPY_INFO, repeat until the
  // initial bytes are all out.
  for (int round = 0; round < 1000; ++round) {
    Result<DrainStats> stats = DrainToStream(*drain, *writer);
    ASSERT_TRUE(stats.ok()) << stats.status().ToString();
    if (stats->bytes == 0) {  // the device threads have not written yet
      std::vector<pollfd> pfds;
      for (const DrainDevice& d : drain_devices) {
        pfds.push_back({d.data_fd, POLLIN, 0});
      }
      ::poll(pfds.data(), pfds.size(), 20);
    }
    Result<std::vector<PrecopyInfo>> infos =
        drain->RefreshPrecopyInfo(src.kernel);
    ASSERT_TRUE(infos.ok()) << infos.status().ToString();
    uint64_t pending = 0;
    for (const PrecopyInfo& info : *infos) pending += info.initial_bytes;
    if (pending == 0) break;
  }
  for (int i = 0; i < kDevices; ++i) {
    EXPECT_EQ(drain->bytes_read(uint32_t(i)), 1u << 20) << i;
    Result<int> fd = SetState(src.kernel, src.fds[i], MigState::kStopCopy);
    ASSERT_TRUE(fd.ok()) << fd.status().ToString();
    EXPECT_EQ(*fd, -1);  // the same data_fd keeps streaming
  }
  drain->EnterStopCopy();
  ASSERT_TRUE(DrainToStream(*drain, *writer).ok());
  for (int i = 0; i < kDevices; ++i) {
    EXPECT_TRUE(drain->ended(uint32_t(i)));
    ASSERT_TRUE(writer->EndDevice(uint32_t(i)).ok());
  }
  ASSERT_TRUE(writer->Finish().ok());
  drain.reset();
  for (int i = 0; i < kDevices; ++i) {
    ASSERT_TRUE(src.kernel.Close(drain_devices[i].data_fd).ok());
    ASSERT_TRUE(SetState(src.kernel, src.fds[i], MigState::kStop).ok());
  }

  KernelDeviceSink sink(dst.kernel);
  std::vector<int> resume_fds;
  for (int i = 0; i < kDevices; ++i) {
    Result<int> fd = SetState(dst.kernel, dst.fds[i], MigState::kResuming);
    ASSERT_TRUE(fd.ok() && *fd >= 0) << fd.status().ToString();
    resume_fds.push_back(*fd);
    sink.AddDevice(uint32_t(i), *fd);
  }
  MemoryTransport in(wire.data());
  Receiver receiver(in, {}, sink);
  Result<ReceiveSummary> summary = receiver.Run();
  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  for (int i = 0; i < kDevices; ++i) {
    ASSERT_TRUE(dst.kernel.Close(resume_fds[i]).ok());
    Result<int> stop = SetState(dst.kernel, dst.fds[i], MigState::kStop);
    ASSERT_TRUE(stop.ok()) << "device " << i << ": " << stop.status().ToString();
    EXPECT_TRUE(dst.devices[i]->restored_ok());
    EXPECT_EQ(dst.devices[i]->restored_hash(), src.devices[i]->stream_hash());
    EXPECT_EQ(summary->device_bytes[uint32_t(i)],
              dst.devices[i]->restored_bytes());
  }
}

}  // namespace
}  // namespace converge
