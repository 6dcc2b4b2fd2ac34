// io/ benchmarks: draining device state (QEMU's synchronous way against the
// io_uring + TBB pipeline), codecs against memcpy, and the RAM sender
// against a page-by-page memcpy.
//
// The devices are emulated VFIO devices (sim/vfio_device.h) in STOP_COPY:
// each data_fd is a real pipe filled by the device's own thread with its
// content mix (25 % zero, 35 % text-like, 40 % random blocks).

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <vector>

#include <benchmark/benchmark.h>

#include "bitmap/dirty_bitmap.h"
#include "engine/vfio_feature.h"
#include "io/codec.h"
#include "io/compress_pipeline.h"
#include "io/data_fd_reader.h"
#include "io/device_drain.h"
#include "io/file_transport.h"
#include "io/ram_sender.h"
#include "io/stream_writer.h"
#include "sim/emulated_kernel.h"
#include "sim/vfio_device.h"
#include "sim/vfio_device_stream.h"

namespace converge {
namespace {

constexpr uint64_t kDeviceStateBytes = 256ull << 20;

// A blocking write() sink, the synchronous baseline's transport.
class FdSink final : public Transport {
 public:
  explicit FdSink(int fd) : fd_(fd) {}
  Status Write(std::span<const uint8_t> bytes) override {
    while (!bytes.empty()) {
      CONVERGE_ASSIGN_OR_RETURN(long n, RetryOnEintr([&] {
        return SysCall("write sink",
                       [&] { return ::write(fd_, bytes.data(), bytes.size()); });
      }));
      bytes = bytes.subspan(static_cast<size_t>(n));
      bytes_written_ += static_cast<uint64_t>(n);
    }
    return OkStatus();
  }
  Result<size_t> Read(std::span<uint8_t>) override {
    return FailedPreconditionError("sink is write-only");
  }
  Status Flush() override { return OkStatus(); }
  Status Close() override { return OkStatus(); }

 private:
  int fd_;
};

// Counts bytes and drops them.
class NullTransport final : public Transport {
 public:
  Status Write(std::span<const uint8_t> bytes) override {
    bytes_written_ += bytes.size();
    return OkStatus();
  }
  Result<size_t> Read(std::span<uint8_t>) override { return size_t{0}; }
  Status Flush() override { return OkStatus(); }
  Status Close() override { return OkStatus(); }
};

// N emulated devices switched to STOP_COPY, each streaming
// kDeviceStateBytes through its data_fd.
class StopCopyDevices {
 public:
  explicit StopCopyDevices(int count) {
    for (int i = 0; i < count; ++i) {
      sim::VfioDeviceOptions o;
      o.precopy_initial_bytes = 0;
      o.stop_copy_bytes = kDeviceStateBytes;
      o.seed = static_cast<uint64_t>(i) + 1;
      auto device = sim::EmulatedVfioDevice::Create(kernel_, o);
      const int fd = kernel_.Install(device);
      Result<int> data_fd =
          SetMigDeviceState(kernel_, fd, MigState::kStopCopy, "to STOP_COPY");
      if (!data_fd.ok() || *data_fd < 0) std::abort();
      devices_.push_back(device);
      device_fds_.push_back(fd);
      drain_.push_back({static_cast<uint32_t>(i), *data_fd,
                        "dev" + std::to_string(i)});
      layout_.devices.push_back({static_cast<uint32_t>(i), 0,
                                 "dev" + std::to_string(i)});
    }
  }
  ~StopCopyDevices() {
    for (size_t i = 0; i < devices_.size(); ++i) {
      (void)kernel_.Close(drain_[i].data_fd);
      (void)SetMigDeviceState(kernel_, device_fds_[i], MigState::kStop, "to STOP");
      (void)kernel_.Close(device_fds_[i]);
    }
  }
  Kernel& kernel() { return kernel_; }
  const std::vector<DrainDevice>& drain() const { return drain_; }
  const StreamLayout& layout() const { return layout_; }

 private:
  sim::EmulatedKernel kernel_;
  std::vector<std::shared_ptr<sim::EmulatedVfioDevice>> devices_;
  std::vector<int> device_fds_;
  std::vector<DrainDevice> drain_;
  StreamLayout layout_;
};

int OpenDevNull() {
  int fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (fd < 0) std::abort();
  return fd;
}

// QEMU's way: one device after another, one blocking read() of up to 1 MiB,
// compress, write, repeat.
void BM_DeviceDrainSync(benchmark::State& state) {
  const int devices = static_cast<int>(state.range(0));
  const CodecOptions codec{static_cast<Codec>(state.range(1)), 1};
  const int null_fd = OpenDevNull();
  uint64_t bytes = 0;
  for (auto _ : state) {
    state.PauseTiming();
    auto rig = std::make_unique<StopCopyDevices>(devices);
    FdSink sink(null_fd);
    auto writer = StreamWriter::Create(sink, rig->layout(), codec).value();
    ByteBuffer chunk;
    state.ResumeTiming();
    for (const DrainDevice& d : rig->drain()) {
      DataFdReader reader(rig->kernel(), d.data_fd, d.device_id, d.name);
      for (;;) {
        Result<ReadOutcome> r = reader.Read(chunk, nullptr);
        if (!r.ok()) {
          state.SkipWithError(r.status().ToString().c_str());
          break;
        }
        if (*r == ReadOutcome::kEnd) break;
        if (*r != ReadOutcome::kData) continue;
        if (!writer->WriteDeviceChunk(d.device_id, chunk).ok()) std::abort();
      }
      bytes += reader.bytes_read();
    }
    state.PauseTiming();
    writer.reset();
    rig.reset();
    state.ResumeTiming();
  }
  ::close(null_fd);
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
  state.SetLabel(std::string(CodecName(codec.codec)));
}

// Every device read at once through io_uring, compressed on TBB, written
// through io_uring: the three overlap.
void BM_DeviceDrainPipeline(benchmark::State& state) {
  const int devices = static_cast<int>(state.range(0));
  const CodecOptions codec{static_cast<Codec>(state.range(1)), 1};
  uint64_t bytes = 0;
  for (auto _ : state) {
    state.PauseTiming();
    auto rig = std::make_unique<StopCopyDevices>(devices);
    auto sink = FileTransport::Create("/dev/null").value();
    auto writer = StreamWriter::Create(*sink, rig->layout(), codec).value();
    auto drain =
        DeviceDrain::Create(rig->drain(), DataPhase::kStopCopy).value();
    state.ResumeTiming();
    Result<DrainStats> stats = DrainToStream(*drain, *writer);
    if (!stats.ok() || !sink->Flush().ok()) {
      state.SkipWithError(stats.status().ToString().c_str());
      break;
    }
    bytes += stats->bytes;
    state.PauseTiming();
    drain.reset();
    writer.reset();
    sink.reset();
    rig.reset();
    state.ResumeTiming();
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
  state.SetLabel(std::string(CodecName(codec.codec)));
}

void DrainArgs(benchmark::internal::Benchmark* b) {
  for (int devices : {1, 4}) {
    for (Codec codec : {Codec::kNone, Codec::kLz4}) {
      b->Args({devices, static_cast<int>(codec)});
    }
  }
  b->ArgNames({"devices", "codec"})
      ->Iterations(1)
      ->Repetitions(3)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
}
BENCHMARK(BM_DeviceDrainSync)->Apply(DrainArgs);
BENCHMARK(BM_DeviceDrainPipeline)->Apply(DrainArgs);

enum ContentKind { kZero = 0, kText = 1, kRandom = 2 };

std::vector<uint8_t> MakeContent(int kind, size_t bytes) {
  sim::ContentMix mix;
  mix.zero_fraction = kind == kZero ? 1.0 : 0.0;
  mix.text_fraction = kind == kText ? 1.0 : 0.0;
  std::vector<uint8_t> out(bytes);
  sim::DeviceStateContent(7, mix).Fill(0, out);
  return out;
}

const char* ContentName(int kind) {
  return kind == kZero ? "zero" : kind == kText ? "text" : "random";
}

// One 1 MiB chunk per iteration through a codec (decoded size checked once).
void BM_Compress(benchmark::State& state) {
  const CodecOptions codec{static_cast<Codec>(state.range(0)),
                           static_cast<int>(state.range(1))};
  const std::vector<uint8_t> input =
      MakeContent(static_cast<int>(state.range(2)), 1 << 20);
  ByteBuffer out;
  size_t encoded = 0;
  for (auto _ : state) {
    Result<Codec> used = EncodeChunk(codec, input, out);
    benchmark::DoNotOptimize(out.data());
    encoded = *used == Codec::kNone ? input.size() : out.size();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(input.size()));
  state.counters["ratio"] =
      static_cast<double>(input.size()) / static_cast<double>(encoded);
  state.SetLabel(std::string(CodecName(codec.codec)) +
                 (codec.codec == Codec::kZstd
                      ? "-" + std::to_string(codec.zstd_level)
                      : "") +
                 " " + ContentName(static_cast<int>(state.range(2))));
}
BENCHMARK(BM_Compress)
    ->ArgNames({"codec", "level", "content"})
    ->ArgsProduct({{static_cast<int>(Codec::kNone)}, {1}, {kZero, kText, kRandom}})
    ->ArgsProduct({{static_cast<int>(Codec::kLz4)}, {1}, {kZero, kText, kRandom}})
    ->ArgsProduct({{static_cast<int>(Codec::kZstd)}, {1, 3}, {kZero, kText, kRandom}});

void BM_IoMemcpyBaseline(benchmark::State& state) {
  const std::vector<uint8_t> input = MakeContent(kText, 1 << 20);
  std::vector<uint8_t> out(input.size());
  for (auto _ : state) {
    std::memcpy(out.data(), input.data(), input.size());
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(input.size()));
}
BENCHMARK(BM_IoMemcpyBaseline);

constexpr uint64_t kRamBytes = 64ull << 20;
constexpr uint64_t kRamPages = kRamBytes / 4096;

struct GuestRam {
  GuestRam() : words(kRamBytes / 8) {
    sim::DeviceStateContent(11, sim::ContentMix{}).Fill(
        0, {reinterpret_cast<uint8_t*>(words.data()), kRamBytes});
  }
  uint8_t* data() { return reinterpret_cast<uint8_t*>(words.data()); }
  std::vector<uint64_t> words;
};

// Every page of 64 MiB dirty, sent through the RAM sender (zero pages
// elided, codec as given) to a transport that drops the bytes.
void BM_RamSend(benchmark::State& state) {
  static GuestRam ram;
  const CodecOptions codec{static_cast<Codec>(state.range(0)), 1};
  StreamLayout layout;
  layout.regions = {{0, kRamBytes}};
  NullTransport sink;
  auto writer = StreamWriter::Create(sink, layout, codec).value();
  RamSender sender(*writer, {{0, kRamBytes, ram.data()}});
  std::vector<DirtyBitmap> bitmaps(1, DirtyBitmap(kRamPages));
  for (auto _ : state) {
    bitmaps[0].SetRange(0, kRamPages);
    Result<RamSendStats> stats = sender.Send(bitmaps);
    if (!stats.ok() || !stats->complete) {
      state.SkipWithError("send failed");
      break;
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(kRamPages));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(kRamBytes));
  state.SetLabel(std::string(CodecName(codec.codec)));
}
BENCHMARK(BM_RamSend)
    ->Arg(static_cast<int>(Codec::kNone))
    ->Arg(static_cast<int>(Codec::kLz4))
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// The floor for BM_RamSend: the same pages copied one by one.
void BM_RamSendMemcpyBaseline(benchmark::State& state) {
  static GuestRam ram;
  std::vector<uint8_t> out(1 << 20);
  for (auto _ : state) {
    for (uint64_t p = 0; p < kRamPages; ++p) {
      std::memcpy(out.data() + (p % 256) * 4096, ram.data() + p * 4096, 4096);
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(kRamPages));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(kRamBytes));
}
BENCHMARK(BM_RamSendMemcpyBaseline)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace converge
