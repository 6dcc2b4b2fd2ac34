#include "io/device_drain.h"

#include <cassert>
#include <limits>
#include <set>
#include <sys/uio.h>

#include <cerrno>

namespace converge {

DeviceDrain::DeviceDrain(DataPhase phase, const DeviceDrainOptions& options)
    : phase_(phase), options_(options) {}

Result<std::unique_ptr<DeviceDrain>> DeviceDrain::Create(
    std::span<const DrainDevice> devices, DataPhase phase,
    const DeviceDrainOptions& options) {
  if (devices.empty()) return InvalidArgumentError("no devices to drain");
  if (options.chunk_bytes == 0 ||
      options.chunk_bytes > std::numeric_limits<int>::max() ||
      options.buffers_per_device == 0) {
    return InvalidArgumentError(
        "chunk_bytes must be in [1, INT_MAX] and buffers_per_device > 0");
  }
  std::set<uint32_t> ids;
  for (const DrainDevice& d : devices) {
    if (!ids.insert(d.device_id).second) {
      return InvalidArgumentError("device id " + std::to_string(d.device_id) +
                                  " given twice");
    }
    if (d.data_fd < 0) {
      return InvalidArgumentError("device " + d.name + " has no data_fd");
    }
  }
  std::unique_ptr<DeviceDrain> drain(new DeviceDrain(phase, options));
  UringOptions ring_options;
  ring_options.entries = static_cast<unsigned>(devices.size()) * 2 + 8;
  CONVERGE_ASSIGN_OR_RETURN(drain->ring_, Uring::Create(ring_options));
  for (const DrainDevice& d : devices) drain->devices_.push_back({d});

  const size_t buffers = devices.size() * options.buffers_per_device;
  std::vector<iovec> iovecs;
  for (size_t i = 0; i < buffers; ++i) {
    drain->pool_.emplace_back(new uint8_t[options.chunk_bytes]);
    iovecs.push_back({drain->pool_.back().get(), options.chunk_bytes});
    drain->free_.push_back(static_cast<int>(buffers - 1 - i));
  }
  if (options.register_buffers) {
    // Pinned buffers count against RLIMIT_MEMLOCK; without enough, plain
    // reads are just as correct.
    drain->registered_ = drain->ring_->RegisterBuffers(iovecs).ok();
  }
  return drain;
}

DeviceDrain::~DeviceDrain() {
  // The kernel may still write into pool buffers: cancel the reads still in
  // flight (a device with nothing to say would hold its read forever) and
  // reap them all before the buffers go.
  constexpr uint64_t kCancelTag = ~uint64_t{0};
  unsigned cancels = 0;
  for (size_t i = 0; i < devices_.size(); ++i) {
    if (devices_[i].state == State::kReading &&
        ring_->PrepCancel(static_cast<uint64_t>(i), kCancelTag)) {
      ++cancels;
    }
  }
  if (cancels > 0 && !ring_->Submit().ok()) return;
  while (in_flight_ > 0 || cancels > 0) {
    Result<io_uring_cqe*> cqe = ring_->WaitCqe();
    if (!cqe.ok()) break;
    if (io_uring_cqe_get_data64(*cqe) == kCancelTag) {
      --cancels;
    } else {
      --in_flight_;
    }
    ring_->CqeSeen(*cqe);
  }
}

int DeviceDrain::TakeBuffer() {
  std::lock_guard<std::mutex> lock(mu_);
  if (free_.empty()) return -1;
  int b = free_.back();
  free_.pop_back();
  return b;
}

void DeviceDrain::Release(const DrainChunk& chunk) {
  assert(chunk.buffer >= 0);
  {
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(chunk.buffer);
  }
  released_.notify_one();
}

Status DeviceDrain::SubmitRead(size_t index) {
  Device& d = devices_[index];
  assert(d.buffer >= 0 && d.fill < options_.chunk_bytes);
  uint8_t* buf = pool_[d.buffer].get() + d.fill;
  const unsigned length = static_cast<unsigned>(options_.chunk_bytes - d.fill);
  // A data_fd is a stream (pread gives ESPIPE): offset -1 reads at the
  // file position.
  const int flags =
      phase_ == DataPhase::kPreCopy && d.nowait ? RWF_NOWAIT : 0;
  const bool queued =
      registered_ ? ring_->PrepReadFixed(d.spec.data_fd, buf, length,
                                         uint64_t(-1), d.buffer, index, flags)
                  : ring_->PrepRead(d.spec.data_fd, buf, length, uint64_t(-1),
                                    index, flags);
  if (!queued) return InternalError("io_uring submission queue full");
  d.state = State::kReading;
  ++in_flight_;
  return OkStatus();
}

Status DeviceDrain::StartReads() {
  bool queued = false;
  for (size_t i = 0; i < devices_.size(); ++i) {
    Device& d = devices_[i];
    if (d.state != State::kNeedRead) continue;
    if (d.buffer < 0) {
      d.buffer = TakeBuffer();
      if (d.buffer < 0) continue;  // waits for Release()
      d.fill = 0;
    }
    CONVERGE_RETURN_IF_ERROR(SubmitRead(i));
    queued = true;
  }
  if (queued) CONVERGE_RETURN_IF_ERROR(ring_->Submit());
  return OkStatus();
}

void DeviceDrain::EmitChunk(Device& d) {
  if (d.fill == 0) return;  // the buffer stays with the device
  ready_.push_back({d.spec.device_id, d.sequence++,
                    {pool_[d.buffer].get(), d.fill}, d.buffer});
  d.bytes += d.fill;
  d.buffer = -1;
  d.fill = 0;
}

Status DeviceDrain::Complete(size_t index, int result) {
  Device& d = devices_[index];
  --in_flight_;
  if (result == -EINTR) {  // a signal: read again
    d.state = State::kNeedRead;
    return OkStatus();
  }
  if (result == -EOPNOTSUPP && d.nowait && phase_ == DataPhase::kPreCopy) {
    d.nowait = false;  // the file has no non-blocking reads: read plainly
    d.state = State::kNeedRead;
    return OkStatus();
  }
  Result<ReadOutcome> outcome = ClassifyDataFdRead(phase_, result, d.spec.name);
  if (!outcome.ok()) {
    d.state = State::kEnded;
    return outcome.status();
  }
  switch (*outcome) {
    case ReadOutcome::kData:
      d.fill += static_cast<size_t>(result);
      d.state = State::kNeedRead;
      if (!options_.fill_chunks || d.fill == options_.chunk_bytes) EmitChunk(d);
      break;
    case ReadOutcome::kNothingNow:
      EmitChunk(d);
      d.state = State::kIdle;
      break;
    case ReadOutcome::kEnd:
      EmitChunk(d);
      d.state = State::kEnded;
      break;
  }
  return OkStatus();
}

Result<std::optional<DrainChunk>> DeviceDrain::Next() {
  for (;;) {
    if (!ready_.empty()) {
      DrainChunk c = ready_.front();
      ready_.pop_front();
      return std::optional<DrainChunk>(c);
    }
    CONVERGE_RETURN_IF_ERROR(StartReads());
    if (in_flight_ == 0) {
      bool waiting = false;
      for (const Device& d : devices_) waiting |= d.state == State::kNeedRead;
      if (!waiting) return std::optional<DrainChunk>();
      // Every buffer is with the consumer: wait for one back.
      std::unique_lock<std::mutex> lock(mu_);
      released_.wait(lock, [&] { return !free_.empty(); });
      continue;
    }
    CONVERGE_ASSIGN_OR_RETURN(io_uring_cqe * cqe, ring_->WaitCqe());
    while (cqe != nullptr) {
      const size_t index = static_cast<size_t>(io_uring_cqe_get_data64(cqe));
      const int res = cqe->res;
      ring_->CqeSeen(cqe);
      CONVERGE_RETURN_IF_ERROR(Complete(index, res));
      cqe = ring_->PeekCqe();
    }
  }
}

void DeviceDrain::Rearm() {
  for (Device& d : devices_) {
    if (d.state == State::kIdle) d.state = State::kNeedRead;
  }
}

Result<std::vector<PrecopyInfo>> DeviceDrain::RefreshPrecopyInfo(
    Kernel& kernel) {
  std::vector<PrecopyInfo> infos(devices_.size());
  for (size_t i = 0; i < devices_.size(); ++i) {
    Device& d = devices_[i];
    if (d.state == State::kEnded) continue;
    CONVERGE_ASSIGN_OR_RETURN(
        infos[i], QueryPrecopyInfo(kernel, d.spec.data_fd, d.spec.name));
    if (d.state == State::kIdle &&
        infos[i].initial_bytes + infos[i].dirty_bytes > 0) {
      d.state = State::kNeedRead;
    }
  }
  return infos;
}

void DeviceDrain::EnterStopCopy() {
  phase_ = DataPhase::kStopCopy;
  Rearm();
}

uint64_t DeviceDrain::bytes_read(uint32_t device_id) const {
  for (const Device& d : devices_) {
    if (d.spec.device_id == device_id) return d.bytes;
  }
  return 0;
}

bool DeviceDrain::ended(uint32_t device_id) const {
  for (const Device& d : devices_) {
    if (d.spec.device_id == device_id) return d.state == State::kEnded;
  }
  return false;
}

}  // namespace converge
