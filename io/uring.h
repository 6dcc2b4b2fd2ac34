// Uring: an owned io_uring instance (liburing), with the opcodes converge
// uses probed at setup, optional registered buffers and files, and thin
// submission/completion helpers.
//
// A failed Create() unwinds completely (no ring, no registrations). ENOMEM
// while setting up the ring or registering buffers means RLIMIT_MEMLOCK is
// too low; the error says to raise it (ulimit -l).
//
// Thread-safety: none. A Uring is used by one thread at a time (its owner);
// different Uring objects are independent.

#ifndef CONVERGE_IO_URING_H_
#define CONVERGE_IO_URING_H_

#include <liburing.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "base/status.h"

namespace converge {

struct UringOptions {
  // Submission queue entries (rounded up to a power of two by the kernel).
  // Each entry costs 64 bytes of SQ plus 32 bytes of CQ (twice as many CQEs).
  unsigned entries = 64;
};

class Uring {
 public:
  // Sets up a ring and checks that READ, WRITE, READ_FIXED and WRITE_FIXED
  // are supported and that the kernel reports IORING_FEAT_NODROP and
  // IORING_FEAT_SUBMIT_STABLE (5.5+). Everything is released on failure.
  [[nodiscard]] static Result<std::unique_ptr<Uring>> Create(
      const UringOptions& options = {});

  Uring(const Uring&) = delete;
  Uring& operator=(const Uring&) = delete;
  ~Uring();

  // IORING_FEAT_* bits the kernel reported.
  uint32_t features() const { return features_; }
  unsigned sq_entries() const { return ring_.sq.ring_entries; }

  // Registers buffers for READ_FIXED/WRITE_FIXED (buffer index = position in
  // iovecs). Pinned memory counts against RLIMIT_MEMLOCK.
  // REQUIRES: no buffers registered yet; !iovecs.empty().
  Status RegisterBuffers(std::span<const iovec> iovecs);
  Status UnregisterBuffers();
  bool has_registered_buffers() const { return buffers_registered_; }

  // Registers fds for IOSQE_FIXED_FILE (file index = position in fds).
  // REQUIRES: no files registered yet; !fds.empty().
  Status RegisterFiles(std::span<const int> fds);
  Status UnregisterFiles();

  // Returns a free SQE, or nullptr when the SQ is full (submit, then retry).
  io_uring_sqe* GetSqe() { return io_uring_get_sqe(&ring_); }

  // Queues read(fd, buf, length) at offset (-1: the file position / a
  // stream); user_data comes back in the CQE. Returns false if the SQ is full.
  // rw_flags are RWF_* (RWF_NOWAIT: complete with -EAGAIN instead of
  // waiting for a pollable fd; -EOPNOTSUPP where the file cannot do that).
  [[nodiscard]] bool PrepRead(int fd, void* buf, unsigned length,
                              uint64_t offset, uint64_t user_data,
                              int rw_flags = 0);
  // As PrepRead, into registered buffer buf_index (buf must lie inside it).
  [[nodiscard]] bool PrepReadFixed(int fd, void* buf, unsigned length,
                                   uint64_t offset, int buf_index,
                                   uint64_t user_data, int rw_flags = 0);
  // Queues write(fd, buf, length) at offset. Returns false if the SQ is full.
  [[nodiscard]] bool PrepWrite(int fd, const void* buf, unsigned length,
                               uint64_t offset, uint64_t user_data);

  // Queues a cancel of the request whose user_data is target; its own
  // completion carries user_data (0 or -ENOENT/-EALREADY in res). Returns
  // false if the SQ is full.
  [[nodiscard]] bool PrepCancel(uint64_t target, uint64_t user_data);

  // Submits queued SQEs; returns how many the kernel took.
  Result<unsigned> Submit();
  // Submits queued SQEs and waits for at least one completion; returns how
  // many SQEs the kernel took.
  Result<unsigned> SubmitAndWait(unsigned wait_nr = 1);
  // Returns the next CQE, waiting for one if none is ready. The caller
  // consumes it with CqeSeen().
  Result<io_uring_cqe*> WaitCqe();
  // Returns the next ready CQE or nullptr without blocking.
  io_uring_cqe* PeekCqe();
  // Marks cqe consumed (its slot may be reused at once).
  void CqeSeen(io_uring_cqe* cqe) { io_uring_cqe_seen(&ring_, cqe); }

 private:
  Uring() = default;

  io_uring ring_{};
  bool ring_ready_ = false;
  bool buffers_registered_ = false;
  bool files_registered_ = false;
  uint32_t features_ = 0;
};

}  // namespace converge

#endif  // CONVERGE_IO_URING_H_
