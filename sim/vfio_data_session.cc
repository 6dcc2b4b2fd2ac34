#include "sim/vfio_data_session.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <cerrno>
#include <utility>

namespace converge::sim {
namespace {

// What a resuming device reads at once.
constexpr size_t kChunkBytes = 256 * 1024;

// A broken pipe must come back as EPIPE on device threads, never as a
// process-wide SIGPIPE.
void BlockSigpipeOnThisThread() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

void SetPipeSize(int fd, uint64_t bytes) {
  // Best effort: above /proc/sys/fs/pipe-max-size an unprivileged process
  // gets EPERM and keeps the default 64 KiB.
  if (bytes > 0) (void)::fcntl(fd, F_SETPIPE_SZ, static_cast<int>(bytes));
}

// Waits until fd (if >= 0) has `events` or wake_fd is signalled; consumes
// the wake-up.
void WaitFor(int fd, short events, int wake_fd) {
  pollfd fds[2] = {{wake_fd, POLLIN, 0}, {fd, events, 0}};
  int n = fd >= 0 ? 2 : 1;
  while (::poll(fds, n, -1) < 0 && errno == EINTR) {
  }
  if (fds[0].revents & POLLIN) {
    uint64_t v;
    (void)!::read(wake_fd, &v, sizeof v);
  }
}

struct Pipe {
  int read_fd = -1;
  int write_fd = -1;
  int wake_fd = -1;
};

Result<Pipe> MakePipe(int flags, uint64_t pipe_bytes, const char* what) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC | flags) != 0) return ErrnoStatus(errno, what);
  int wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake < 0) {
    Status s = ErrnoStatus(errno, what);
    ::close(fds[0]);
    ::close(fds[1]);
    return s;
  }
  SetPipeSize(fds[1], pipe_bytes);
  return Pipe{fds[0], fds[1], wake};
}

}  // namespace

// ---- SavingSession ----------------------------------------------------------

Result<std::unique_ptr<SavingSession>> SavingSession::Start(
    std::shared_ptr<const DeviceStateContent> content, uint64_t pipe_bytes,
    bool zero_copy) {
  CONVERGE_ASSIGN_OR_RETURN(
      Pipe p, MakePipe(O_NONBLOCK, pipe_bytes, "saving data_fd pipe"));
  int dup_fd = ::fcntl(p.read_fd, F_DUPFD_CLOEXEC, 0);
  if (dup_fd < 0) {
    Status s = ErrnoStatus(errno, "saving data_fd dup");
    ::close(p.read_fd);
    ::close(p.write_fd);
    ::close(p.wake_fd);
    return s;
  }
  return std::unique_ptr<SavingSession>(new SavingSession(
      std::move(content), p.read_fd, dup_fd, p.write_fd, p.wake_fd, zero_copy));
}

SavingSession::SavingSession(std::shared_ptr<const DeviceStateContent> content,
                             int read_fd, int read_dup_fd, int write_fd,
                             int wake_fd, bool zero_copy)
    : content_(std::move(content)),
      read_fd_(read_fd),
      read_dup_fd_(read_dup_fd),
      wake_fd_(wake_fd),
      write_fd_(write_fd),
      splice_(zero_copy) {
  thread_ = std::thread([this] { Run(); });
}

SavingSession::~SavingSession() {
  End();
  ::close(read_dup_fd_);
  ::close(wake_fd_);
}

void SavingSession::Wake() {
  uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof one);
}

void SavingSession::Publish(uint64_t bytes, SegmentKind kind) {
  if (bytes == 0) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    assert(!finishing_);
    published_ += bytes;
    if (!segments_.empty() && segments_.back().kind == kind) {
      segments_.back().end = published_;
    } else {
      segments_.push_back(Segment{published_, kind});
    }
  }
  Wake();
}

void SavingSession::ReclassifyUnreadAsInitial() {
  std::lock_guard<std::mutex> lock(mu_);
  if (segments_.empty()) return;
  uint64_t end = segments_.back().end;
  segments_.assign(1, Segment{end, SegmentKind::kInitial});
}

void SavingSession::Finish() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (finishing_) return;
    finishing_ = true;
    // STOP_COPY reads block until data or the end, like the kernel's. The
    // duplicate shares the reader's file description, so this changes the
    // reader's fd too without touching its (possibly reused) number.
    int fl = ::fcntl(read_dup_fd_, F_GETFL);
    if (fl >= 0) (void)::fcntl(read_dup_fd_, F_SETFL, fl & ~O_NONBLOCK);
  }
  Wake();
}

bool SavingSession::finishing() const {
  std::lock_guard<std::mutex> lock(mu_);
  return finishing_;
}

void SavingSession::End() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  Wake();
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> lock(mu_);
  if (write_fd_ >= 0) {
    ::close(write_fd_);
    write_fd_ = -1;
  }
}

ssize_t SavingSession::WritePayload() {
  constexpr size_t kBlockBytes = DeviceStateContent::kBlockBytes;
  iovec iov[kBatchBlocks];
  DeviceStateContent::Block blocks[kBatchBlocks];
  size_t count = 0;
  for (uint64_t at = written_; count < kBatchBlocks && at < published_;
       ++count) {
    size_t in_block = static_cast<size_t>(at % kBlockBytes);
    size_t n = static_cast<size_t>(
        std::min<uint64_t>(kBlockBytes - in_block, published_ - at));
    blocks[count] = content_->BlockAt(at / kBlockBytes);
    iov[count] = {const_cast<uint8_t*>(blocks[count].data) + in_block, n};
    at += n;
  }
  ssize_t n = -1;
  if (splice_) {
    // The pages are immutable for the life of the process, the condition
    // vmsplice() sets for handing them over without a copy.
    n = ::vmsplice(write_fd_, iov, count, SPLICE_F_NONBLOCK);
    if (n < 0 && errno != EAGAIN && errno != EINTR) splice_ = false;
  }
  if (!splice_) n = ::writev(write_fd_, iov, static_cast<int>(count));
  if (n <= 0) return n;
  // Whole blocks add their precomputed hash; pieces are hashed.
  size_t left = static_cast<size_t>(n);
  for (size_t i = 0; left > 0; ++i) {
    size_t piece = std::min(left, iov[i].iov_len);
    if (piece == kBlockBytes) {
      digest_.AddBlock(blocks[i].hash);
    } else {
      digest_.Update(std::span<const uint8_t>(
          static_cast<const uint8_t*>(iov[i].iov_base), piece));
    }
    left -= piece;
  }
  written_ += static_cast<uint64_t>(n);
  return n;
}

void SavingSession::Run() {
  BlockSigpipeOnThisThread();
  std::array<uint8_t, StreamTrailer::kBytes> trailer{};
  bool trailer_ready = false;
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    if (stop_ || write_fd_ < 0) return;
    ssize_t n;
    if (written_ < published_) {
      n = WritePayload();
    } else if (finishing_) {
      if (!trailer_ready) {
        trailer = StreamTrailer{written_, digest_.Digest()}.Encode();
        trailer_ready = true;
      }
      if (trailer_written_ == trailer.size()) {
        // Trailer written: close the write end, the reader sees EOF.
        ::close(write_fd_);
        write_fd_ = -1;
        complete_ = true;
        return;
      }
      n = ::write(write_fd_, trailer.data() + trailer_written_,
                  trailer.size() - trailer_written_);
      if (n > 0) trailer_written_ += static_cast<uint64_t>(n);
    } else {
      lock.unlock();
      WaitFor(-1, 0, wake_fd_);
      lock.lock();
      continue;
    }
    if (n > 0 || (n < 0 && errno == EINTR)) continue;
    if (n < 0 && errno == EAGAIN) {
      int fd = write_fd_;
      lock.unlock();
      WaitFor(fd, POLLOUT, wake_fd_);
      lock.lock();
      continue;
    }
    // EPIPE cannot happen while read_dup_fd_ is open; any other error ends
    // the stream early, which the resuming side rejects.
    return;
  }
}

SavingSession::Unread SavingSession::unread() const {
  std::lock_guard<std::mutex> lock(mu_);
  int in_pipe = 0;
  if (::ioctl(read_dup_fd_, FIONREAD, &in_pipe) != 0) in_pipe = 0;
  uint64_t total_written = written_ + trailer_written_;
  uint64_t consumed = total_written - std::min<uint64_t>(
                                          total_written,
                                          static_cast<uint64_t>(in_pipe));
  Unread u;
  uint64_t start = 0;
  for (const Segment& s : segments_) {
    uint64_t lo = std::max(start, consumed);
    if (s.end > lo) {
      uint64_t n = s.end - lo;
      if (s.kind == SegmentKind::kInitial) u.initial_bytes += n;
      if (s.kind == SegmentKind::kDirty) u.dirty_bytes += n;
    }
    start = s.end;
  }
  uint64_t total = published_ + (finishing_ ? StreamTrailer::kBytes : 0);
  u.total_bytes = total - std::min(total, consumed);
  return u;
}

uint64_t SavingSession::payload_bytes_written() const {
  std::lock_guard<std::mutex> lock(mu_);
  return written_;
}

uint64_t SavingSession::payload_hash() const {
  std::lock_guard<std::mutex> lock(mu_);
  return digest_.Digest();
}

bool SavingSession::complete() const {
  std::lock_guard<std::mutex> lock(mu_);
  return complete_;
}

// ---- ResumingSession --------------------------------------------------------

Result<std::unique_ptr<ResumingSession>> ResumingSession::Start(
    uint64_t pipe_bytes) {
  CONVERGE_ASSIGN_OR_RETURN(Pipe p,
                            MakePipe(0, pipe_bytes, "resuming data_fd pipe"));
  // Only the device's end polls; the caller's write end stays blocking.
  int fl = ::fcntl(p.read_fd, F_GETFL);
  (void)::fcntl(p.read_fd, F_SETFL, fl | O_NONBLOCK);
  return std::unique_ptr<ResumingSession>(
      new ResumingSession(p.read_fd, p.write_fd, p.wake_fd));
}

ResumingSession::ResumingSession(int read_fd, int write_fd, int wake_fd)
    : write_fd_(write_fd), wake_fd_(wake_fd), read_fd_(read_fd),
      buf_(kChunkBytes) {
  thread_ = std::thread([this] { Run(); });
}

ResumingSession::~ResumingSession() {
  (void)Finish();
  ::close(wake_fd_);
}

bool ResumingSession::Drain() {
  for (;;) {
    ssize_t n = ::read(read_fd_, buf_.data(), buf_.size());
    if (n > 0) {
      verifier_.Update(
          std::span<const uint8_t>(buf_.data(), static_cast<size_t>(n)));
      continue;
    }
    if (n == 0) return false;
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return true;
    if (read_error_.ok()) read_error_ = ErrnoStatus(errno, "resuming read");
    return false;
  }
}

void ResumingSession::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  bool open = true;
  while (!stop_) {
    open = open && Drain();
    int fd = open ? read_fd_ : -1;
    lock.unlock();
    WaitFor(fd, POLLIN, wake_fd_);
    lock.lock();
  }
}

Status ResumingSession::Finish() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (finished_) return verdict_;
    stop_ = true;
  }
  uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof one);
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> lock(mu_);
  (void)Drain();
  ::close(read_fd_);
  read_fd_ = -1;
  finished_ = true;
  if (!read_error_.ok()) {
    verdict_ = CorruptError("device stream unreadable: " +
                            read_error_.message());
  } else {
    verdict_ = verifier_.Finish();
  }
  return verdict_;
}

uint64_t ResumingSession::bytes_received() const {
  std::lock_guard<std::mutex> lock(mu_);
  return verifier_.bytes_seen();
}

uint64_t ResumingSession::payload_hash() const {
  std::lock_guard<std::mutex> lock(mu_);
  return verifier_.payload_hash();
}

}  // namespace converge::sim
