// The data side of an emulated VFIO device: a saving session streams device
// state into a real pipe from a device thread; a resuming session reads a
// pipe on a device thread and checks the stream (vfio_device_stream.h).
//
// Saving: the device thread hands the pipe references to the immutable
// pages its state is made of (vmsplice(); writev() where that is refused),
// so the reader's read() is the one copy, as with a real device. Both pipe
// ends are O_NONBLOCK while in PRE_COPY, so an empty pipe reads EAGAIN
// ("nothing now"). Finish() switches the read end to blocking (STOP_COPY
// reads block like the kernel's), and once everything published and the
// trailer are written the write end is closed: read() returns 0, the
// permanent end. End() stops early; the reader then sees
// the bytes already in the pipe followed by EOF. The session keeps a
// duplicate of the read end, so the device thread never gets SIGPIPE even
// when the reader closes its fd first.
//
// Resuming: the caller writes into the write end (blocking); the device
// thread reads everything into a StreamVerifier. Finish() drains what is
// still in the pipe, stops the thread, closes the read end and returns the
// verdict; writes after that fail with EPIPE (SIGPIPE unless blocked).
//
// Thread-safety: all methods are safe to call from any thread; each session
// has one device thread, joined by End()/Finish() and the destructor.

#ifndef CONVERGE_SIM_VFIO_DATA_SESSION_H_
#define CONVERGE_SIM_VFIO_DATA_SESSION_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "base/status.h"
#include "sim/vfio_device_stream.h"

namespace converge::sim {

// What a range of the saving stream carries (for PRECOPY_INFO).
enum class SegmentKind : uint8_t { kInitial, kDirty, kStopCopy };

class SavingSession {
 public:
  struct Unread {
    uint64_t initial_bytes = 0;  // published initial data not yet read
    uint64_t dirty_bytes = 0;    // published dirty data not yet read
    uint64_t total_bytes = 0;    // everything published, trailer included
  };

  // Creates the pipe (O_CLOEXEC | O_NONBLOCK) and starts the device thread
  // with nothing published. pipe_bytes is a best-effort F_SETPIPE_SZ;
  // zero_copy hands pages by reference (vmsplice) rather than writing them.
  static Result<std::unique_ptr<SavingSession>> Start(
      std::shared_ptr<const DeviceStateContent> content, uint64_t pipe_bytes,
      bool zero_copy);
  ~SavingSession();
  SavingSession(const SavingSession&) = delete;
  SavingSession& operator=(const SavingSession&) = delete;

  // The read end, to hand out as the data_fd. Its owner closes it.
  int read_fd() const { return read_fd_; }

  // Appends bytes of a kind to the stream. REQUIRES: !finishing().
  void Publish(uint64_t bytes, SegmentKind kind);
  // Counts every published, unread byte as initial data (a device that
  // re-initialised its precopy state).
  void ReclassifyUnreadAsInitial();
  // Publishes nothing more: the thread writes what is published, then the
  // trailer, then closes the write end. Makes reads of the data_fd block.
  void Finish();
  bool finishing() const;
  // Stops the device thread and closes the write end now. Idempotent.
  void End();

  // What the reader has not read yet (bytes written minus FIONREAD, so a
  // byte counts as read once it has left the pipe).
  Unread unread() const;
  // Payload bytes written into the pipe so far, and their PayloadDigest.
  uint64_t payload_bytes_written() const;
  uint64_t payload_hash() const;
  // True once the trailer is written and the write end closed.
  bool complete() const;

 private:
  struct Segment {
    uint64_t end;  // exclusive stream offset; starts where the last ended
    SegmentKind kind;
  };

  SavingSession(std::shared_ptr<const DeviceStateContent> content,
                int read_fd, int read_dup_fd, int write_fd, int wake_fd,
                bool zero_copy);
  void Run();
  void Wake();
  // Hands the pipe the next published payload bytes (up to 256 KiB) by
  // reference when vmsplice() works, by copy otherwise; returns the
  // syscall's result. REQUIRES: mu_ held, written_ < published_.
  ssize_t WritePayload();

  static constexpr size_t kBatchBlocks = 64;

  const std::shared_ptr<const DeviceStateContent> content_;
  const int read_fd_;
  const int read_dup_fd_;  // closed by the destructor
  const int wake_fd_;      // eventfd: work for the thread

  mutable std::mutex mu_;
  int write_fd_;                   // -1 once closed
  bool stop_ = false;
  bool finishing_ = false;
  bool complete_ = false;
  uint64_t published_ = 0;         // payload bytes published
  uint64_t written_ = 0;           // payload bytes written to the pipe
  uint64_t trailer_written_ = 0;   // trailer bytes written
  std::vector<Segment> segments_;  // covers [0, published_)
  PayloadDigest digest_;           // of the payload written
  bool splice_;                    // vmsplice(); false once it has failed
  std::thread thread_;
};

class ResumingSession {
 public:
  // Creates the pipe (O_CLOEXEC; the write end blocking) and starts the
  // device thread. pipe_bytes is a best-effort F_SETPIPE_SZ.
  static Result<std::unique_ptr<ResumingSession>> Start(uint64_t pipe_bytes);
  ~ResumingSession();
  ResumingSession(const ResumingSession&) = delete;
  ResumingSession& operator=(const ResumingSession&) = delete;

  // The write end, to hand out as the data_fd. Its owner closes it.
  int write_fd() const { return write_fd_; }

  // Drains the pipe, stops the thread and checks the stream: OK, or a
  // kCorrupt error saying what is wrong. Idempotent (returns the verdict).
  Status Finish();
  uint64_t bytes_received() const;
  uint64_t payload_hash() const;

 private:
  ResumingSession(int read_fd, int write_fd, int wake_fd);
  void Run();
  // Reads what is in the pipe now; false at EOF or on an error.
  bool Drain();

  const int write_fd_;
  const int wake_fd_;

  mutable std::mutex mu_;
  int read_fd_;  // -1 once closed
  bool stop_ = false;
  bool finished_ = false;
  Status verdict_;
  Status read_error_;
  StreamVerifier verifier_;
  std::vector<uint8_t> buf_;
  std::thread thread_;
};

}  // namespace converge::sim

#endif  // CONVERGE_SIM_VFIO_DATA_SESSION_H_
