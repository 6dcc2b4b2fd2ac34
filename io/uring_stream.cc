#include "io/uring_stream.h"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <limits>

namespace converge {

namespace {
// The user data of the one-at-a-time operations (reads, direct writes);
// buffered writes carry their buffer index.
constexpr uint64_t kSingleTag = std::numeric_limits<uint64_t>::max();
}  // namespace

UringStream::UringStream(int fd, bool seekable, std::string name,
                         const UringStreamOptions& options)
    : fd_(fd), seekable_(seekable), name_(std::move(name)), options_(options) {}

Result<std::unique_ptr<UringStream>> UringStream::Create(
    int fd, bool seekable, std::string name,
    const UringStreamOptions& options) {
  if (fd < 0) return InvalidArgumentError(name + ": bad fd");
  if (options.buffer_bytes == 0 ||
      options.buffer_bytes > std::numeric_limits<unsigned>::max() ||
      options.max_buffers == 0 || options.max_in_flight == 0) {
    return InvalidArgumentError(
        name + ": buffer_bytes, max_buffers and max_in_flight must be > 0");
  }
  std::unique_ptr<UringStream> s(
      new UringStream(fd, seekable, std::move(name), options));
  UringOptions ring_options;
  ring_options.entries = std::max(8u, options.max_in_flight * 2);
  CONVERGE_ASSIGN_OR_RETURN(s->ring_, Uring::Create(ring_options));
  s->buffers_.resize(options.max_buffers);
  for (int i = static_cast<int>(options.max_buffers) - 1; i >= 0; --i) {
    s->free_.push_back(i);
  }
  return s;
}

UringStream::~UringStream() {
  // The kernel may still be reading the buffers: wait for them.
  while (in_flight_ > 0 && ReapOne().ok()) {
  }
}

void UringStream::QueueCurrent() {
  if (current_ < 0) return;
  Buffer& b = buffers_[current_];
  if (b.filled == 0) return;
  b.offset = write_offset_;
  write_offset_ += b.filled;
  queued_.push_back(current_);
  current_ = -1;
}

Status UringStream::SubmitBuffer(int index) {
  Buffer& b = buffers_[index];
  const uint64_t offset = seekable_ ? b.offset + b.done : uint64_t(-1);
  if (!ring_->PrepWrite(fd_, b.data.data() + b.done,
                        static_cast<unsigned>(b.filled - b.done), offset,
                        static_cast<uint64_t>(index))) {
    return InternalError(name_ + ": io_uring submission queue full");
  }
  ++in_flight_;
  CONVERGE_RETURN_IF_ERROR(ring_->Submit());
  return OkStatus();
}

Status UringStream::Pump() {
  const unsigned limit = seekable_ ? options_.max_in_flight : 1;
  while (!queued_.empty() && in_flight_ < limit) {
    const int index = queued_.front();
    queued_.pop_front();
    CONVERGE_RETURN_IF_ERROR(SubmitBuffer(index));
  }
  return OkStatus();
}

Status UringStream::ReapOne() {
  CONVERGE_ASSIGN_OR_RETURN(io_uring_cqe * cqe, ring_->WaitCqe());
  const int res = cqe->res;
  const int index = static_cast<int>(io_uring_cqe_get_data64(cqe));
  ring_->CqeSeen(cqe);
  assert(in_flight_ > 0);
  --in_flight_;
  if (res < 0) return ErrnoStatus(-res, "write " + name_);
  if (res == 0) return IoError("write " + name_ + ": wrote 0 bytes");
  Buffer& b = buffers_[index];
  b.done += static_cast<size_t>(res);
  if (b.done < b.filled) return SubmitBuffer(index);  // short write: the rest
  b.filled = 0;
  b.done = 0;
  free_.push_back(index);
  return OkStatus();
}

Status UringStream::WriteDirect(std::span<const uint8_t> bytes) {
  CONVERGE_RETURN_IF_ERROR(Flush());  // what was written before goes first
  assert(in_flight_ == 0);
  while (!bytes.empty()) {
    const unsigned length = static_cast<unsigned>(
        std::min<size_t>(bytes.size(), std::numeric_limits<int>::max()));
    const uint64_t offset = seekable_ ? write_offset_ : uint64_t(-1);
    if (!ring_->PrepWrite(fd_, bytes.data(), length, offset, kSingleTag)) {
      return error_ = InternalError(name_ + ": io_uring submission queue full");
    }
    Result<unsigned> submitted = ring_->Submit();
    if (!submitted.ok()) return error_ = submitted.status();
    Result<io_uring_cqe*> cqe = ring_->WaitCqe();
    if (!cqe.ok()) return error_ = cqe.status();
    const int res = (*cqe)->res;
    ring_->CqeSeen(*cqe);
    if (res < 0) return error_ = ErrnoStatus(-res, "write " + name_);
    if (res == 0) return error_ = IoError("write " + name_ + ": wrote 0 bytes");
    write_offset_ += static_cast<uint64_t>(res);
    bytes = bytes.subspan(static_cast<size_t>(res));
  }
  return OkStatus();
}

Status UringStream::Write(std::span<const uint8_t> bytes) {
  CONVERGE_RETURN_IF_ERROR(error_);
  if (bytes.size() >= options_.buffer_bytes) return WriteDirect(bytes);
  while (!bytes.empty()) {
    if (current_ < 0) {
      while (free_.empty()) {  // backpressure: wait for the kernel
        Status s = ReapOne();
        if (!s.ok()) return error_ = s;
        s = Pump();
        if (!s.ok()) return error_ = s;
      }
      current_ = free_.back();
      free_.pop_back();
      Buffer& fresh = buffers_[current_];
      if (fresh.data.size() != options_.buffer_bytes) {
        fresh.data.resize(options_.buffer_bytes);
      }
    }
    Buffer& b = buffers_[current_];
    const size_t n = std::min(bytes.size(), b.data.size() - b.filled);
    std::memcpy(b.data.data() + b.filled, bytes.data(), n);
    b.filled += n;
    bytes = bytes.subspan(n);
    size_t buffered = 0;
    for (const Buffer& each : buffers_) buffered += each.filled;
    peak_buffered_bytes_ = std::max(peak_buffered_bytes_, buffered);
    if (b.filled == b.data.size()) {
      QueueCurrent();
      Status s = Pump();
      if (!s.ok()) return error_ = s;
    }
  }
  return OkStatus();
}

Status UringStream::Flush() {
  CONVERGE_RETURN_IF_ERROR(error_);
  QueueCurrent();
  for (;;) {
    Status s = Pump();
    if (!s.ok()) return error_ = s;
    if (in_flight_ == 0 && queued_.empty()) return OkStatus();
    s = ReapOne();
    if (!s.ok()) return error_ = s;
  }
}

Result<size_t> UringStream::Read(std::span<uint8_t> buf) {
  if (buf.empty()) return size_t{0};
  assert(in_flight_ == 0 && "reads and writes do not mix on one stream");
  const unsigned length = static_cast<unsigned>(
      std::min<size_t>(buf.size(), std::numeric_limits<int>::max()));
  const uint64_t offset = seekable_ ? read_offset_ : uint64_t(-1);
  if (!ring_->PrepRead(fd_, buf.data(), length, offset, kSingleTag)) {
    return InternalError(name_ + ": io_uring submission queue full");
  }
  CONVERGE_RETURN_IF_ERROR(ring_->Submit());
  CONVERGE_ASSIGN_OR_RETURN(io_uring_cqe * cqe, ring_->WaitCqe());
  const int res = cqe->res;
  ring_->CqeSeen(cqe);
  if (res < 0) return ErrnoStatus(-res, "read " + name_);
  read_offset_ += static_cast<uint64_t>(res);
  return static_cast<size_t>(res);
}

}  // namespace converge
