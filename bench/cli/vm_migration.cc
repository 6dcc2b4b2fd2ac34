#include "bench/cli/vm_migration.h"

#include <fcntl.h>
#include <sys/mman.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "bench/cli/emulated_devices.h"
#include "bench/cli/paced_transport.h"
#include "engine/destination.h"
#include "engine/precopy_engine.h"
#include "io/socket_transport.h"
#include "sim/emulated_kernel.h"
#include "vm/kvm_dirty_log_source.h"
#include "vm/micro_vm.h"

namespace converge::bench {
namespace {

// Anonymous host memory for the destination's guest RAM.
class HostMemory {
 public:
  static Result<std::unique_ptr<HostMemory>> Map(Kernel& kernel,
                                                 uint64_t bytes) {
    CONVERGE_ASSIGN_OR_RETURN(
        void* addr,
        kernel.Mmap(bytes, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
    return std::unique_ptr<HostMemory>(
        new HostMemory(kernel, static_cast<uint8_t*>(addr), bytes));
  }
  HostMemory(const HostMemory&) = delete;
  HostMemory& operator=(const HostMemory&) = delete;
  ~HostMemory() { (void)kernel_.Munmap(data_, bytes_); }

  uint8_t* data() const { return data_; }

 private:
  HostMemory(Kernel& kernel, uint8_t* data, uint64_t bytes)
      : kernel_(kernel), data_(data), bytes_(bytes) {}
  Kernel& kernel_;
  uint8_t* data_;
  uint64_t bytes_;
};

Result<GuestWorkload> GuestWorkloadOf(const std::string& name) {
  if (name == "seq") return GuestWorkload::kSequential;
  if (name == "random") return GuestWorkload::kRandom;
  if (name == "hotcold") return GuestWorkload::kHotCold;
  if (name == "idle") return GuestWorkload::kIdle;
  if (name == "burst") return GuestWorkload::kBursts;
  return InvalidArgumentError("--workload: unknown workload '" + name + "'");
}

// What the receiver thread reports.
struct DestinationOutcome {
  Status status;
  DestinationResult result;
};

// The destination: accepts the connection, receives into `memory` and
// `devices`, validates the devices.
DestinationOutcome ReceiveMigration(Kernel& kernel, SocketListener& listener,
                                    uint64_t ram_bytes, uint8_t* memory,
                                    const EmulatedDevices& devices) {
  DestinationOutcome out;
  Result<std::unique_ptr<SocketTransport>> transport = listener.Accept();
  if (!transport.ok()) {
    out.status = transport.status().WithContext("destination: accept");
    return out;
  }
  Result<std::unique_ptr<Destination>> dest =
      Destination::Create(kernel, Clock::Monotonic(), **transport);
  if (!dest.ok()) {
    out.status = dest.status().WithContext("destination");
    return out;
  }
  out.status = (*dest)->AddRegion({0, ram_bytes, memory});
  for (size_t i = 0; i < devices.size() && out.status.ok(); ++i) {
    out.status = (*dest)->AddDevice(devices.name(i), devices.fd(i)).status();
  }
  if (out.status.ok()) out.status = (*dest)->Prepare();
  if (out.status.ok()) {
    Result<DestinationResult> r = (*dest)->Run();
    if (r.ok()) {
      out.result = *r;
    } else {
      out.status = r.status();
    }
  }
  if (!out.status.ok()) out.status = out.status.WithContext("destination");
  // Dropping the transport closes the socket: a source still writing
  // fails instead of waiting on a reader that is gone.
  return out;
}

// Compares guest RAM page by page; the message names the first page that
// differs and how many do.
std::string CompareRam(const uint8_t* source, const uint8_t* destination,
                       uint64_t bytes, bool* equal) {
  constexpr uint64_t kPage = MicroVm::kPageBytes;
  uint64_t differing = 0;
  uint64_t first = 0;
  for (uint64_t off = 0; off < bytes; off += kPage) {
    if (std::memcmp(source + off, destination + off, kPage) != 0) {
      if (differing++ == 0) first = off / kPage;
    }
  }
  *equal = differing == 0;
  if (*equal) {
    return "RAM equal by memcmp (" + std::to_string(bytes / kPage) +
           " pages)";
  }
  return std::to_string(differing) + " RAM pages differ, the first is page " +
         std::to_string(first);
}

}  // namespace

Status CheckKvmAvailable(const std::string& kvm_path) {
  Result<int> fd = Kernel::Default().Open(kvm_path, O_RDWR | O_CLOEXEC);
  if (!fd.ok()) {
    return Status(fd.status().code(),
                  "demo and sweep migrate a real KVM guest and need " +
                      kvm_path + " (" + fd.status().message() +
                      "); `converge-bench model` runs without it");
  }
  return Kernel::Default().Close(*fd);
}

Result<MigrationSummary> RunVmMigration(const MigrationConfig& config,
                                        const IterationObserver& observer) {
  CONVERGE_RETURN_IF_ERROR(CheckKvmAvailable());
  CONVERGE_ASSIGN_OR_RETURN(GuestWorkload workload,
                            GuestWorkloadOf(config.workload));
  CONVERGE_ASSIGN_OR_RETURN(Codec codec, ParseCodec(config.codec));
  const auto wall_start = std::chrono::steady_clock::now();
  Clock& clock = Clock::Monotonic();
  Kernel& host = Kernel::Default();

  MigrationSummary summary = SummaryOf(config, "demo");

  // The source guest, running its workload.
  MicroVmOptions vm_options;
  vm_options.ram_bytes = summary.ram_bytes;
  CONVERGE_ASSIGN_OR_RETURN(std::unique_ptr<MicroVm> vm,
                            MicroVm::Create(host, vm_options));
  CONVERGE_RETURN_IF_ERROR(vm->Start());
  WorkloadSpec spec;
  spec.kind = workload;
  spec.rate_pages_per_s = config.write_rate_pages;
  CONVERGE_RETURN_IF_ERROR(vm->SetWorkload(spec));

  // Devices on both sides; the destination's RAM.
  sim::EmulatedKernel source_kernel;
  sim::EmulatedKernel destination_kernel;
  EmulatedDevices source_devices(source_kernel, config);
  EmulatedDevices destination_devices(destination_kernel, config);
  CONVERGE_ASSIGN_OR_RETURN(std::unique_ptr<HostMemory> destination_ram,
                            HostMemory::Map(host, summary.ram_bytes));

  // Loopback TCP: connect first, so the receiver's Accept() cannot wait on
  // a source that failed to connect.
  CONVERGE_ASSIGN_OR_RETURN(std::unique_ptr<SocketListener> listener,
                            SocketListener::Listen("127.0.0.1", 0));
  CONVERGE_ASSIGN_OR_RETURN(
      std::unique_ptr<SocketTransport> socket,
      SocketTransport::Connect("127.0.0.1", listener->port()));
  DestinationOutcome outcome;
  std::thread receiver([&] {
    outcome = ReceiveMigration(destination_kernel, *listener,
                               summary.ram_bytes, destination_ram->data(),
                               destination_devices);
  });

  std::unique_ptr<PacedTransport> paced;
  Transport* transport = socket.get();
  if (config.link_gbps > 0) {
    paced = std::make_unique<PacedTransport>(*socket, clock, LinkBps(config));
    transport = paced.get();
  }

  KvmDirtyLogSource kvm_log(host, vm->vm_fd(), vm->memslots());
  EngineOptions options;
  options.policy = MakePolicy(config);
  options.codec.codec = codec;
  Status run_status;
  Result<SwitchoverStats> sw = InternalError("not run");
  Result<std::unique_ptr<PrecopyEngine>> engine =
      PrecopyEngine::Create(source_kernel, clock, *transport, options);
  run_status = engine.status();
  if (run_status.ok()) {
    run_status = (*engine)->AddRegion({0, summary.ram_bytes, vm->ram()});
  }
  if (run_status.ok()) run_status = (*engine)->AddSource(&kvm_log);
  for (size_t i = 0; i < source_devices.size() && run_status.ok(); ++i) {
    run_status = (*engine)
                     ->AddDevice(source_devices.name(i), source_devices.fd(i))
                     .status();
  }
  if (run_status.ok()) {
    SwitchoverHooks hooks;
    hooks.pause_vcpus = [&vm] { return vm->Pause(); };
    hooks.resume_vcpus = [&vm] { (void)vm->Resume(); };
    sw = DriveMigration(**engine, clock, hooks, observer, DriveOptions(),
                        summary);
    run_status = sw.status();
  }
  // Closing ends the stream for the destination (or, after a failure,
  // makes it stop at a stream without end).
  Status closed = socket->Close();
  receiver.join();
  if (!run_status.ok() && !outcome.status.ok()) {
    // The destination's error is usually the cause of the source's.
    return Status(run_status.code(),
                  run_status.message() + "; " + outcome.status.message());
  }
  CONVERGE_RETURN_IF_ERROR(run_status);
  CONVERGE_RETURN_IF_ERROR(outcome.status);
  CONVERGE_RETURN_IF_ERROR(closed.WithContext("close the source socket"));

  const DestinationResult& dest = outcome.result;
  (*engine)->RecordDestinationApply(dest.ready_ns - sw->last_byte_ns);
  summary.measured_downtime_ms = NsToMs(dest.ready_ns - sw->paused_ns);
  summary.zero_pages_sent = dest.summary.zero_pages;

  // The source guest stays paused: its RAM is what the destination must
  // hold.
  bool ram_equal = false;
  std::string ram_note = CompareRam(vm->ram(), destination_ram->data(),
                                    summary.ram_bytes, &ram_equal);
  Status devices_equal =
      CompareDeviceState(source_devices, destination_devices);
  summary.verified = ram_equal && devices_equal.ok();
  summary.verification =
      ram_note + "; " +
      (devices_equal.ok()
           ? std::to_string(config.devices) +
                 " device state(s) equal (restored XXH3 = streamed XXH3)"
           : devices_equal.message());
  summary.wall_time_ms = std::chrono::duration<double, std::milli>(
                             std::chrono::steady_clock::now() - wall_start)
                             .count();
  return summary;
}

}  // namespace converge::bench
