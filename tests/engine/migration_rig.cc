#include "tests/engine/migration_rig.h"

#include <sys/mman.h>

#include <gtest/gtest.h>

#include <cstring>
#include <thread>
#include <utility>

#include "io/socket_transport.h"
#include "vm/kvm_dirty_log_source.h"
#include "vm/kvm_dirty_ring_source.h"

namespace converge::testing {

Result<std::unique_ptr<MigrationRig>> MigrationRig::Create(
    const RigOptions& o) {
  std::unique_ptr<MigrationRig> rig(new MigrationRig());
  rig->options_ = o;
  MicroVmOptions vm_options;
  vm_options.ram_bytes = o.ram_bytes;
  vm_options.dirty_ring_bytes = o.dirty_ring ? 64 << 10 : 0;
  vm_options.fill = o.fill;
  CONVERGE_ASSIGN_OR_RETURN(rig->vm_,
                            MicroVm::Create(Kernel::Default(), vm_options));
  MicroVm& vm = *rig->vm_;
  if (o.dirty_ring) {
    auto ring = std::make_unique<KvmDirtyRingSource>(
        Kernel::Default(), vm.vm_fd(), vm.memslots(), vm.dirty_rings());
    KvmDirtyRingSource* raw = ring.get();
    // On the vCPU's own thread: only CollectFull can resync a ring that
    // KVM overran (docs: vm/kvm_dirty_ring_source.h).
    const int vcpu_fd = vm.vcpu_fds()[0];
    vm.SetDirtyRingFullHandler(
        [raw, vcpu_fd] { return raw->CollectFull(vcpu_fd); });
    rig->kvm_source_ = std::move(ring);
  } else {
    rig->kvm_source_ = std::make_unique<KvmDirtyLogSource>(
        Kernel::Default(), vm.vm_fd(), vm.memslots());
  }
  rig->watched_ = std::make_unique<WatchedSource>(*rig->kvm_source_);
  CONVERGE_RETURN_IF_ERROR(vm.Start());
  CONVERGE_RETURN_IF_ERROR(vm.SetWorkload(o.workload));
  for (int i = 0; i < o.num_devices; ++i) {
    sim::VfioDeviceOptions d = o.device;
    d.seed = static_cast<uint64_t>(i) + 1;
    auto dev = sim::EmulatedVfioDevice::Create(rig->emulated_, d);
    rig->src_fds_.push_back(rig->emulated_.Install(dev));
    rig->src_devices_.push_back(std::move(dev));
  }
  void* dst = mmap(nullptr, o.ram_bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (dst == MAP_FAILED) return ErrnoStatus(errno, "mmap destination RAM");
  rig->dst_ram_ = static_cast<uint8_t*>(dst);
  return rig;
}

MigrationRig::~MigrationRig() {
  vm_.reset();
  if (dst_ram_ != nullptr) munmap(dst_ram_, options_.ram_bytes);
}

Result<std::unique_ptr<PrecopyEngine>> MigrationRig::NewEngine(
    Transport& transport, EngineOptions options) {
  return NewEngine(emulated_, transport, std::move(options), {});
}

Result<std::unique_ptr<PrecopyEngine>> MigrationRig::NewEngine(
    Kernel& kernel, Transport& transport, EngineOptions options,
    const std::vector<std::pair<DirtySource*, SourceKind>>& sources) {
  CONVERGE_ASSIGN_OR_RETURN(
      std::unique_ptr<PrecopyEngine> engine,
      PrecopyEngine::Create(kernel, clock(), transport, std::move(options)));
  CONVERGE_RETURN_IF_ERROR(
      engine->AddRegion({0, vm_->ram_bytes(), vm_->ram()}));
  if (sources.empty()) {
    CONVERGE_RETURN_IF_ERROR(engine->AddSource(watched_.get()));
  }
  for (const auto& [source, kind] : sources) {
    CONVERGE_RETURN_IF_ERROR(engine->AddSource(source, kind));
  }
  for (size_t i = 0; i < src_fds_.size(); ++i) {
    CONVERGE_RETURN_IF_ERROR(
        engine->AddDevice("dev" + std::to_string(i), src_fds_[i]).status());
  }
  return engine;
}

Result<SwitchoverStats> MigrationRig::RunSource(PrecopyEngine& engine) {
  CONVERGE_RETURN_IF_ERROR(engine.Start());
  for (;;) {
    CONVERGE_RETURN_IF_ERROR(engine.Sync().status());
    SwitchoverDecision d = engine.ShouldSwitchover();
    if (d.action == Action::kAbort) {
      (void)engine.Cancel();
      return CancelledError("policy aborted: " + d.reason);
    }
    if (d.action != Action::kContinue) {
      decided_ = engine.CurrentEstimate();
      break;
    }
    CONVERGE_RETURN_IF_ERROR(engine.Iterate().status());
  }
  MicroVm* vm = vm_.get();
  SwitchoverHooks hooks;
  hooks.pause_vcpus = [vm] { return vm->Pause(); };
  hooks.resume_vcpus = [vm] { (void)vm->Resume(); };
  return engine.Switchover(hooks);
}

Result<std::unique_ptr<Destination>> MigrationRig::NewDestination(
    Transport& transport) {
  dst_devices_.clear();
  dst_fds_.clear();
  std::memset(dst_ram_, 0xA5, 4096);  // a stale page must be overwritten
  CONVERGE_ASSIGN_OR_RETURN(
      std::unique_ptr<Destination> dest,
      Destination::Create(emulated_, clock(), transport));
  CONVERGE_RETURN_IF_ERROR(dest->AddRegion({0, vm_->ram_bytes(), dst_ram_}));
  for (size_t i = 0; i < src_fds_.size(); ++i) {
    auto dev = sim::EmulatedVfioDevice::Create(emulated_, options_.device);
    dst_fds_.push_back(emulated_.Install(dev));
    dst_devices_.push_back(std::move(dev));
    CONVERGE_RETURN_IF_ERROR(
        dest->AddDevice("dev" + std::to_string(i), dst_fds_.back()).status());
  }
  return dest;
}

bool MigrationRig::Verify(std::string* mismatch) const {
  bool ok = true;
  if (std::memcmp(vm_->ram(), dst_ram_, vm_->ram_bytes()) != 0) {
    for (uint64_t p = 0; p < vm_->num_pages(); ++p) {
      if (std::memcmp(vm_->ram() + p * 4096, dst_ram_ + p * 4096, 4096)) {
        *mismatch += "RAM differs first at page " + std::to_string(p) + "; ";
        break;
      }
    }
    ok = false;
  }
  for (size_t i = 0; i < dst_devices_.size(); ++i) {
    if (!dst_devices_[i]->restored_ok() ||
        dst_devices_[i]->restored_hash() != src_devices_[i]->stream_hash()) {
      *mismatch += "device " + std::to_string(i) + " not restored; ";
      ok = false;
    }
  }
  return ok;
}

Result<MigrationOutcome> MigrationRig::Finish(PrecopyEngine& engine,
                                              const SwitchoverStats& s,
                                              const DestinationResult& d) {
  MigrationOutcome out;
  out.switchover = s;
  out.decided = decided_;
  out.destination = d;
  out.iterations = engine.iterations();
  for (int i = 0; i < kNumFixedCosts; ++i) {
    out.fixed_ns[i] = engine.measured_fixed_cost_ns(static_cast<FixedCost>(i));
  }
  out.verified = Verify(&out.mismatch);
  CONVERGE_RETURN_IF_ERROR(vm_->Resume());
  return out;
}

Result<MigrationOutcome> MigrationRig::MigrateInMemory(EngineOptions options) {
  MemoryTransport out;
  CONVERGE_ASSIGN_OR_RETURN(std::unique_ptr<PrecopyEngine> engine,
                            NewEngine(out, std::move(options)));
  CONVERGE_ASSIGN_OR_RETURN(SwitchoverStats s, RunSource(*engine));
  MemoryTransport in(out.data());
  CONVERGE_ASSIGN_OR_RETURN(std::unique_ptr<Destination> dest,
                            NewDestination(in));
  CONVERGE_ASSIGN_OR_RETURN(DestinationResult d, dest->Run());
  CONVERGE_ASSIGN_OR_RETURN(MigrationOutcome o, Finish(*engine, s, d));
  o.measured_downtime_ms = NsToMs(s.source_downtime_ns);
  return o;
}

Result<MigrationOutcome> MigrationRig::MigrateOverTcp(EngineOptions options) {
  CONVERGE_ASSIGN_OR_RETURN(std::unique_ptr<SocketListener> listener,
                            SocketListener::Listen("127.0.0.1", 0));
  // The kernel completes the handshake into the backlog: connect, then
  // accept, on this thread.
  CONVERGE_ASSIGN_OR_RETURN(
      std::unique_ptr<SocketTransport> send,
      SocketTransport::Connect("127.0.0.1", listener->port()));
  CONVERGE_ASSIGN_OR_RETURN(std::unique_ptr<SocketTransport> receive,
                            listener->Accept());
  return MigrateOver(*send, *receive, std::move(options));
}

Result<MigrationOutcome> MigrationRig::MigrateOver(
    Transport& send, Transport& receive, EngineOptions options,
    std::unique_ptr<PrecopyEngine>* engine_out) {
  Result<DestinationResult> dest_result = InternalError("not run");
  std::unique_ptr<Destination> dest;
  std::thread receiver([&] {
    Result<std::unique_ptr<Destination>> d = NewDestination(receive);
    if (!d.ok()) {
      dest_result = d.status();
      return;
    }
    dest = std::move(*d);
    Status prepared = dest->Prepare();
    dest_result = prepared.ok() ? dest->Run()
                                : Result<DestinationResult>(prepared);
    // A destination that gave up stops reading: closing tells the source,
    // which would otherwise wait on a full socket.
    if (!dest_result.ok()) (void)receive.Close();
  });
  Result<SwitchoverStats> s = InternalError("no engine");
  Result<std::unique_ptr<PrecopyEngine>> engine =
      NewEngine(send, std::move(options));
  if (engine.ok()) {
    s = RunSource(**engine);
  } else {
    s = engine.status();
  }
  // On success this ends the stream; on failure the destination reads a
  // truncated stream (or the dead link's error) and stops.
  (void)send.Close();
  receiver.join();
  if (engine.ok() && engine_out != nullptr) *engine_out = std::move(*engine);
  CONVERGE_RETURN_IF_ERROR(s.status());
  CONVERGE_RETURN_IF_ERROR(dest_result.status());
  PrecopyEngine& e = engine_out != nullptr ? **engine_out : **engine;
  e.RecordDestinationApply(dest_result->ready_ns -
                           std::min(dest_result->ready_ns, s->last_byte_ns));
  CONVERGE_ASSIGN_OR_RETURN(MigrationOutcome o, Finish(e, *s, *dest_result));
  o.measured_downtime_ms = NsToMs(dest_result->ready_ns - s->paused_ns);
  return o;
}

std::unique_ptr<MigrationRig> NewRig(const RigOptions& options) {
  Result<std::unique_ptr<MigrationRig>> rig = MigrationRig::Create(options);
  EXPECT_TRUE(rig.ok()) << rig.status().ToString();
  return rig.ok() ? std::move(*rig) : nullptr;
}

}  // namespace converge::testing
