#include "engine/destination.h"

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <cassert>
#include <cstring>
#include <ctime>
#include <utility>

#include "io/wire_format.h"

namespace converge {
namespace {

// Reads the preamble and the stream header record ahead, so their device
// list can be checked before the Receiver starts, then serves those bytes
// again before the rest of the stream.
class HeaderPeekTransport final : public Transport {
 public:
  explicit HeaderPeekTransport(Transport& base) : base_(base) {}

  // The stream header's layout; an error when it cannot be read or parsed
  // (the Receiver then reports the stream's problem itself).
  Result<StreamLayout> Peek() {
    head_.resize(kPreambleBytes + kRecordHeaderBytes);
    CONVERGE_ASSIGN_OR_RETURN(size_t n, ReadFull(base_, head_));
    head_.resize(n);
    if (n < kPreambleBytes + kRecordHeaderBytes) {
      return CorruptError("stream ends inside its header");
    }
    const RecordHeader h = DecodeRecordHeader(head_.data() + kPreambleBytes);
    if (h.type != RecordType::kStreamHeader ||
        h.payload_bytes > kMaxRecordPayloadBytes) {
      return CorruptError("stream does not start with a stream header");
    }
    const size_t at = head_.size();
    head_.resize(at + h.payload_bytes);
    CONVERGE_ASSIGN_OR_RETURN(
        size_t m, ReadFull(base_, std::span<uint8_t>(head_).subspan(at)));
    head_.resize(at + m);
    if (m < h.payload_bytes) return CorruptError("stream header cut short");
    return ParseStreamHeader(std::span<const uint8_t>(head_).subspan(at));
  }

  Status Write(std::span<const uint8_t>) override {
    return FailedPreconditionError("the destination does not write");
  }
  Result<size_t> Read(std::span<uint8_t> buf) override {
    if (pos_ < head_.size()) {
      const size_t n = std::min(buf.size(), head_.size() - pos_);
      std::memcpy(buf.data(), head_.data() + pos_, n);
      pos_ += n;
      bytes_read_ += n;
      return n;
    }
    CONVERGE_ASSIGN_OR_RETURN(size_t n, base_.Read(buf));
    bytes_read_ += n;
    return n;
  }
  Status Flush() override { return OkStatus(); }
  Status Close() override { return base_.Close(); }

 private:
  Transport& base_;
  std::vector<uint8_t> head_;
  size_t pos_ = 0;
};

// Blocks SIGPIPE on this thread for its lifetime; a SIGPIPE raised by a
// write meanwhile is consumed before the old mask returns.
class SigpipeBlock {
 public:
  SigpipeBlock() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~SigpipeBlock() {
    sigset_t pending;
    sigemptyset(&pending);
    if (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1 &&
        sigismember(&old_, SIGPIPE) == 0) {
      const timespec zero{0, 0};
      sigtimedwait(&pipe_, nullptr, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeBlock(const SigpipeBlock&) = delete;
  SigpipeBlock& operator=(const SigpipeBlock&) = delete;

 private:
  sigset_t pipe_;
  sigset_t old_;
};

}  // namespace

class Destination::Rep {
 public:
  Rep(Kernel& k, Clock& c, Transport& t, DestinationOptions o)
      : kernel(k), clock(c), transport(t), options(std::move(o)) {}

  // Ends every RESUMING session (toward STOP), best effort.
  void StopAll() {
    for (auto& d : devices) {
      if (d->state() != MigState::kStop) (void)d->Transition(MigState::kStop);
    }
  }

  Status CheckDevices(const StreamLayout& layout) const {
    if (layout.devices.size() != devices.size()) {
      return InvalidArgumentError(
          "stream has " + std::to_string(layout.devices.size()) +
          " devices, destination has " + std::to_string(devices.size()));
    }
    for (size_t i = 0; i < devices.size(); ++i) {
      const DeviceInfo& s = layout.devices[i];
      if (s.id != i || s.name != devices[i]->name()) {
        return InvalidArgumentError(
            "stream device " + std::to_string(s.id) + " is \"" + s.name +
            "\" but destination device " + std::to_string(i) + " is \"" +
            devices[i]->name() + "\"");
      }
    }
    return OkStatus();
  }

  Kernel& kernel;
  Clock& clock;
  Transport& transport;
  DestinationOptions options;
  std::vector<GuestRegion> regions;
  std::vector<std::unique_ptr<DeviceSession>> devices;
  bool prepared = false;
  bool ran = false;
};

Result<std::unique_ptr<Destination>> Destination::Create(
    Kernel& kernel, Clock& clock, Transport& transport,
    DestinationOptions options) {
  return std::unique_ptr<Destination>(new Destination(std::make_unique<Rep>(
      kernel, clock, transport, std::move(options))));
}

Destination::Destination(std::unique_ptr<Rep> rep) : rep_(std::move(rep)) {}
Destination::~Destination() = default;

Status Destination::AddRegion(const GuestRegion& region) {
  if (rep_->prepared) {
    return FailedPreconditionError("Destination::AddRegion after Prepare()");
  }
  if (region.host == nullptr || region.size_bytes == 0) {
    return InvalidArgumentError("destination region at GPA " +
                                std::to_string(region.gpa) +
                                " needs a host mapping and a size");
  }
  rep_->regions.push_back(region);
  return OkStatus();
}

Result<uint32_t> Destination::AddDevice(std::string name, int device_fd) {
  Rep& r = *rep_;
  if (r.prepared) {
    return FailedPreconditionError("Destination::AddDevice after Prepare()");
  }
  for (const auto& d : r.devices) {
    if (d->name() == name) {
      return InvalidArgumentError("device \"" + name + "\" added twice");
    }
  }
  CONVERGE_ASSIGN_OR_RETURN(
      std::unique_ptr<DeviceSession> session,
      DeviceSession::Open(r.kernel, device_fd, name, r.options.device));
  r.devices.push_back(std::move(session));
  return static_cast<uint32_t>(r.devices.size() - 1);
}

Status Destination::Prepare() {
  Rep& r = *rep_;
  if (r.prepared) return FailedPreconditionError("Destination: prepared twice");
  r.prepared = true;
  for (auto& d : r.devices) {
    Status s = d->Transition(MigState::kResuming);
    if (!s.ok()) {
      r.StopAll();
      return s.WithContext("destination devices to RESUMING");
    }
  }
  return OkStatus();
}

Result<DestinationResult> Destination::Run() {
  Rep& r = *rep_;
  if (r.ran) return FailedPreconditionError("Destination::Run called twice");
  r.ran = true;
  SigpipeBlock no_sigpipe;
  DestinationResult out;
  out.start_ns = r.clock.NowNs();
  if (!r.prepared) CONVERGE_RETURN_IF_ERROR(Prepare());
  auto fail = [&](const Status& error) {
    r.StopAll();
    return error;
  };
  HeaderPeekTransport stream(r.transport);
  Result<StreamLayout> layout = stream.Peek();
  if (layout.ok()) {
    Status s = r.CheckDevices(*layout);
    if (!s.ok()) return fail(s);
  }
  KernelDeviceSink sink(r.kernel);
  for (size_t i = 0; i < r.devices.size(); ++i) {
    sink.AddDevice(static_cast<uint32_t>(i), r.devices[i]->data_fd());
  }
  Receiver receiver(stream, r.regions, sink, r.options.receiver);
  Result<ReceiveSummary> summary = receiver.Run();
  if (!summary.ok()) return fail(summary.status());
  out.summary = *summary;
  out.stream_end_ns = r.clock.NowNs();
  for (auto& d : r.devices) {
    Status s = d->Transition(MigState::kStop);
    if (!s.ok()) {
      return fail(s.WithContext("device " + d->name() +
                                " rejected its migrated state"));
    }
  }
  out.ready_ns = r.clock.NowNs();
  out.device_validate_ns = out.ready_ns - out.stream_end_ns;
  return out;
}

const DeviceSession& Destination::device(uint32_t id) const {
  assert(id < rep_->devices.size());
  return *rep_->devices[id];
}
size_t Destination::num_devices() const { return rep_->devices.size(); }

}  // namespace converge
